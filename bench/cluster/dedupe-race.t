# The same msg_id sent to three instances of a cluster at the same moment,
# ROUNDS times (default 2000): it must run once, never twice, and every
# panel must get an answer.  A long run, not a unit test: started by hand,
#
#   prove -v bench/cluster/dedupe-race.t          # ROUNDS=5000 prove ...
#
# with the test harness of t/ (its own redis-server, three nginx instances
# of two workers, a fake SDK that counts executions).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Time::HiRes qw(time);

my $ROUNDS = $ENV{ROUNDS} // 2000;

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs');
my $rport = $redis->port;
my $sdk = fake_sdk(target_id => 'race', heartbeat_interval => 0);
my $sport = $sdk->port;

my @I;
for my $name (qw(A B C)) {
    my $t = Test::AMonitor->new(workers => 2, log_level => 'warn');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 4m;
    amonitor_redis 127.0.0.1:$rport prefix=race: timeout=500ms;
    amonitor_cluster on;
    amonitor_instance_id $name;
    amonitor_target race ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 5s;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    push @I, $t;
}
ok($sdk->wait_connections(1, 5), 'the SDK is dialed');
sleep_loop(1);

my @p = map { $_->panel('/ws/panel') } @I;
my (%answers, %kinds);
for my $i (0 .. $#p) {
    $p[$i]->tx->on(message => sub {
        my ($tx, $text) = @_;
        my $j = try_decode_json($text) or return;
        my $id = $j->{type} eq 'action_ack' ? $j->{payload}{action_msg_id}
            : $j->{type} eq 'error' ? $j->{msg_id} : undef;
        return unless defined $id && $j->{payload}{final};
        $answers{$id}++;
        $kinds{ $j->{type} eq 'error' ? $j->{payload}{code}
            : $j->{payload}{duplicate} ? 'duplicate' : 'ack' }++;
    });
}

my $t0 = time;
my @ids;
for my $r (1 .. $ROUNDS) {
    my $id = uuid4();
    push @ids, $id;
    my $text = json_text({ msg_id => $id, type => 'action',
        target_id => 'race', timestamp => now_ms(),
        payload => { action => 'restart' } });
    $_->send_text($text) for @p;
    wait_for(sub { ($answers{$id} // 0) == 3 }, 10);
}
my $secs = time - $t0;
sleep_loop(1);

my @missing = grep { ($answers{$_} // 0) != 3 } @ids;
my @twice = grep { $sdk->executed($_) > 1 } @ids;
my @never = grep { $sdk->executed($_) == 0 } @ids;
is(scalar @missing, 0, 'every panel got an answer in every round');
is(scalar @twice, 0, "0 double executions in $ROUNDS rounds");
note(sprintf('%d rounds in %.1f s (%.0f rounds/s); answers: %s; '
    . 'ran once: %d, never: %d', $ROUNDS, $secs, $ROUNDS / $secs,
    join(', ', map { "$_ $kinds{$_}" } sort keys %kinds),
    $ROUNDS - @never - @twice, scalar @never));

done_testing();
