# One worker, several panels, the same msg_ids at the same moment: four
# panels send the same burst of ten msg_ids in one go, round after round,
# so that one pass of the worker's event loop sometimes holds the claims
# of more than one panel's burst (the claims of a pass run together at its
# end, in the order the actions came).  Each msg_id still runs exactly
# once and every panel gets exactly one answer for each: the SDK's ack
# for one of them, "duplicate ignored" for the others.  A zone small
# enough to evict runs the same bursts (claims that evict).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $PANELS = 4;
my $BURST  = 10;    # 4 x 10: more than one batch of 32 in a pass
my $ROUNDS = 40;

for my $zone ('4m', '128k') {
    my $t = Test::AMonitor->new(log_level => 'info');
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'op-a',
        heartbeat_interval => 0);

    $t->write_config(
        server      => 0,
        http_config => <<"EOC",
    amonitor_zone amon $zone;
    amonitor_target op-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 5s;
    amonitor_reconnect 50ms 500ms;
    server {
        listen 127.0.0.1:%%PORT_0%%;
        location = /ws/panel { amonitor_panel on; }
    }
EOC
    )->run;

    ok($sdk->wait_connections(1), "zone $zone: the worker dialed the SDK");

    my @panels = map { $t->panel('/ws/panel', name => "p$_") } 1 .. $PANELS;

    subtest "zone $zone: $ROUNDS bursts of $BURST msg_ids from $PANELS "
        . 'panels at once' => sub {
        my (%answers, @ids);

        # every answer so far, by msg_id and panel
        my $collect = sub {
            for my $i (0 .. $#panels) {
                my @got = $panels[$i]->pending;
                $panels[$i]->clear;
                for my $m (@got) {
                    my $j = $m->{json} or next;
                    my $type = $j->{type} // '';
                    my $id = $type eq 'action_ack'
                        ? $j->{payload}{action_msg_id}
                        : $type eq 'error' ? $j->{msg_id} : next;
                    push @{ $answers{$id}[$i] }, $j;
                }
            }
        };

        for my $r (1 .. $ROUNDS) {
            my @burst = map { sprintf('op-%s-%02d-%03d-%s', $zone, $r, $_,
                uuid4()) } 1 .. $BURST;
            push @ids, @burst;

            # every panel's burst queued in the same loop iteration: the
            # frames reach the worker together
            for my $i (0 .. $#panels) {
                # a different panel first in each round
                my $p = $panels[ ($i + $r) % @panels ];
                $p->send_text(encode_json({ msg_id => $_, type => 'action',
                    target_id => 'op-a', timestamp => now_ms(),
                    payload => { action => 'restart',
                        params => { round => $r } } })) for @burst;
            }
            $_->flush for @panels;

            my $answered = sub {
                $collect->();
                my $n = grep {
                    my $id = $_;
                    @{ $answers{$id} // [] } == @panels
                        && !grep { !$_ } @{ $answers{$id} }
                } @burst;
                return $n == @burst;
            };
            wait_for($answered, tscale(10))
                or diag("round $r: not every panel answered in time");
        }
        # a second answer to anything would come now
        sleep_loop(tscale(0.3));
        $collect->();

        my $tally = dedupe_tally($sdk, \%answers, \@ids, scalar(@panels));
        my @not_once = @{ $tally->{not_once} };
        my @bad = (@{ $tally->{bad_count} }, @{ $tally->{bad_mix} });

        is(scalar(@not_once), 0, 'the SDK executed every msg_id once')
            or diag(join "\n", grep { defined } @not_once[0 .. 9]);
        is(scalar(@bad), 0,
            'every msg_id: one real ack, the other panels a duplicate')
            or diag(join "\n", grep { defined } @bad[0 .. 9]);
        is(scalar($sdk->actions), scalar(@ids),
            'the SDK received ' . scalar(@ids) . ' actions');
    };

    # the small zone's claims had to evict: that path ran too
    if ($zone eq '128k') {
        like($t->read_error_log, qr/amonitor zone is full: evicted/,
            'zone 128k: claims evicted older outcomes');
    }

    $_->close for @panels;
    $t->stop;
    $sdk->stop;
}

done_testing();
