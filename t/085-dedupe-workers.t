# Idempotency across workers: with worker_processes 4, panels on four
# different workers send the same msg_id at the same moment, round after
# round.  The shm claim is atomic, so the fake SDK runs each msg_id
# exactly once, and every panel gets exactly one answer per round: the
# SDK's ack for the claimer, "duplicate ignored" for the others.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Time::HiRes qw(usleep);

my $WORKERS = 4;
my $ROUNDS  = 300;
my $INFLIGHT = 1;     # rounds in flight at once

my $t = Test::AMonitor->new(workers => $WORKERS, log_level => 'info');
my $sdk = fake_sdk(port => $t->port(1), target_id => 'mw-a',
    heartbeat_interval => 0);

# reuseport: a listening socket per worker, so panels spread over them
$t->write_config(
    server      => 0,
    http_config => <<'EOC',
    amonitor_zone amon 4m;
    amonitor_target mw-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ack_timeout 5s;
    amonitor_reconnect 50ms 500ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
EOC
)->run;

ok($sdk->wait_connections($WORKERS), "each of the $WORKERS workers dialed "
    . 'the SDK');

# Which worker a panel is on: each worker's SDK connection sends a
# distinct event, and a panel receives only the one of its worker.
my @conn_ids = $sdk->conn_ids;
is(scalar(@conn_ids), $WORKERS, 'one SDK connection per worker');

my (%by_worker, @all, $serial);
for my $try (1 .. 8) {
    my @new = map { $t->panel('/ws/panel', name => 'p' . ++$serial) }
        1 .. 8;
    push @all, @new;
    my $tag = "which-$try";
    for my $id (@conn_ids) {
        $sdk->send_to($id, encode_json({
            msg_id => "$tag-$id", type => 'event', target_id => 'mw-a',
            timestamp => now_ms(), payload => { target_id => 'mw-a',
                event_name => 'which', data => $id } }));
    }
    for my $p (@new) {
        my $m = $p->recv_until(sub { $_[0]{data} =~ /"$tag-(\d+)"/ }, 5);
        if (!$m) {
            fail($p->name . " received its worker's event");
            next;
        }
        my ($w) = $m->{data} =~ /"$tag-(\d+)"/;
        push @{ $by_worker{$w} }, $p;
        # exactly one of the per-connection events reached it
        sleep_loop(0.05);
        my @others = grep { $_->{data} =~ /"$tag-/ } $p->pending;
        is(scalar(@others), 0, $p->name . " got one worker's event only");
    }
    last if keys(%by_worker) == $WORKERS;
}
is(scalar(keys %by_worker), $WORKERS,
    "panels on all $WORKERS workers (" . scalar(@all) . ' panels opened)');

# one panel per worker takes part in the rounds
my @panels = map { $by_worker{$_}[0] } sort { $a <=> $b } keys %by_worker;
$_->clear for @all;

subtest "$ROUNDS rounds of the same msg_id from panels on different workers"
    => sub {
    my (%answers, @ids, $sent);    # $answers{msg_id}[panel] = [json...]
    my $t0 = now_ms();
    @ids = map { sprintf('mw-%04d-%s', $_, uuid4()) } 1 .. $ROUNDS;
    $sent = 0;

    my $done = sub {
        my $n = 0;
        for my $id (@ids[0 .. $sent - 1]) {
            $n++ if @{ $answers{$id} // [] } == @panels
                && !grep { !$_ } @{ $answers{$id} };
        }
        return $n;
    };
    my $collect = sub {
        for my $i (0 .. $#panels) {
            while (my $m = shift @{ $panels[$i]{queue} }) {
                my $j = $m->{json} or next;
                my $type = $j->{type} // '';
                my $id = $type eq 'action_ack' ? $j->{payload}{action_msg_id}
                    : $type eq 'error' ? $j->{msg_id} : next;
                push @{ $answers{$id}[$i] }, $j;
            }
        }
    };

    while ($sent < $ROUNDS) {
        # a batch of rounds: for each, every panel sends the same msg_id
        # in the same loop iteration, so the frames reach the workers
        # together
        my $end = $sent + $INFLIGHT > $ROUNDS ? $ROUNDS : $sent + $INFLIGHT;
        for my $r ($sent .. $end - 1) {
            my $text = encode_json({ msg_id => $ids[$r], type => 'action',
                target_id => 'mw-a', timestamp => now_ms(),
                payload => { action => 'restart',
                    params => { round => $r } } });
            # a different panel goes first in each round; in odd rounds
            # it is a little ahead of the others, so that every worker
            # gets to win some claims
            my @order = map { $panels[ (int($r / 2) + $_) % @panels ] }
                0 .. $#panels;
            if ($r % 2) {
                $order[0]->send_text($text)->flush;
                usleep(2000);
                shift @order;
            }
            $_->send_text($text) for @order;
        }
        $sent = $end;
        wait_for(sub { $collect->(); $done->() == $sent }, 10)
            or last;
    }
    sleep_loop(tscale(0.5));
    $collect->();
    note(sprintf('%d rounds x %d panels in %.1f s', $ROUNDS,
        scalar(@panels), (now_ms() - $t0) / 1000));

    is($sent, $ROUNDS, 'every round was sent');

    my $tally = dedupe_tally($sdk, \%answers, \@ids, scalar(@panels));
    my @not_once = @{ $tally->{not_once} };
    my @bad_count = @{ $tally->{bad_count} };
    my @bad_mix = @{ $tally->{bad_mix} };
    my %winner = %{ $tally->{winners} };

    is(scalar(@not_once), 0, 'the SDK executed every msg_id exactly once')
        or diag(join "\n", @not_once[0 .. ($#not_once > 9 ? 9 : $#not_once)]);
    is(scalar(@bad_count), 0, 'every panel got exactly one answer per round')
        or diag(join "\n", @bad_count[0 .. ($#bad_count > 9 ? 9
            : $#bad_count)]);
    is(scalar(@bad_mix), 0, 'each round: one real ack, the rest duplicates')
        or diag(join "\n", @bad_mix[0 .. ($#bad_mix > 9 ? 9 : $#bad_mix)]);
    is(scalar($sdk->actions), $ROUNDS, "the SDK received $ROUNDS actions");
    note('rounds won per panel: ' . join(', ', map { "$_: "
        . ($winner{$_} // 0) } 0 .. $#panels));
    is(scalar(keys %winner), scalar(@panels),
        'the claim was won on every worker');
};

my $r = $t->http_get('/status');
my $s = try_decode_json($r->{body}) // {};
is($s->{duplicates}, $ROUNDS * (@panels - 1),
    'amonitor_status: duplicates counted across workers');
is($s->{acks}, $ROUNDS, 'amonitor_status: acks counted across workers');

$_->close for @all;

done_testing();
