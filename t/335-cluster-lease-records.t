# amonitor_cluster: a worker keeps one lease record per target it has
# asked about, and frees it with the target.  Targets dialed on demand
# that never connect are forgotten within a second; their records go
# with them, so a worker that sees targets come and go keeps no more
# records than it has targets (before, each forgotten target left its
# record for the worker's life, walked at every tick).  amonitor_status
# shows the records ("cluster": "leases") and how many the worker holds
# ("held").  Starts its own redis-server.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Mojo::JSON qw(encode_json);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);

my $sdk = fake_sdk(target_id => 'lr-1', heartbeat_interval => 0);

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
$t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis ${\ $redis->addr } prefix=lr: timeout=300ms;
    amonitor_cluster on lease=2s;
    amonitor_instance_id A;
    amonitor_target lr-1 ${\ $sdk->url };
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_dial_attempts 1;
    amonitor_dial_limit_per_panel 10;
    amonitor_ack_timeout 3s;
    amonitor_reconnect 50ms 300ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }'
        . ' location = /status { amonitor_status; }')->run;
$t->ignore_log(qr/connect\(\) failed|cannot connect|never connected/);

sub cluster {
    my $s = try_decode_json($t->http_get('/status')->{body} // '') // {};
    return $s->{cluster} // {};
}

ok(wait_for(sub { (cluster()->{held} // 0) == 1 && $sdk->connections == 1 },
    5), 'the worker holds the configured target\'s lease: '
    . encode_json(cluster()));
is(cluster()->{leases}, 1, '... its one lease record');

my $p = $t->panel('/ws/panel');

# rounds of targets dialed on demand at ports nobody listens on
my $n = 0;
for my $round (1 .. 3) {
    my @ids;
    for (1 .. 10) {
        $n++;
        push @ids, uuid4();
        $p->send_json({ msg_id => $ids[-1], type => 'action',
            target_id => "gone-$n", timestamp => now_ms(),
            payload => { action => 'restart',
                target_url => 'ws://127.0.0.1:' . free_port() . '/' } });
    }
    wait_for(sub { $p->recv_until(sub { 0 }, 0.05);
        !grep { !$p->answers_to($_) } @ids }, 5);
    my @codes = map { my ($a) = $p->answers_to($_);
        $a ? $a->{payload}{code} // $a->{type} : 'none' } @ids;
    is(scalar(grep { $_ eq 'TARGET_UNAVAILABLE' } @codes), 10,
        "round $round: 10 actions for targets that never connect are "
        . 'answered TARGET_UNAVAILABLE') or diag("@codes");
    ok(wait_for(sub { $t->log_count(qr/dialed on demand, never connected/)
        >= $n }, 5), "... and their targets are forgotten ($n in all)");
    ok(wait_for(sub { (cluster()->{leases} // -1) == 1 }, 3),
        '... with their lease records: ' . encode_json(cluster()));
}

is(cluster()->{held}, 1, 'the worker still holds the configured target');
my $id = uuid4();
$p->send_json({ msg_id => $id, type => 'action', target_id => 'lr-1',
    timestamp => now_ms(), payload => { action => 'restart' } });
ok($p->success_ack($id, 5), 'its actions are acked');
is($sdk->executed($id), 1, '... and run once');

# without amonitor_cluster: no "cluster" member
my $plain = Test::AMonitor->new(workers => 1);
$plain->write_config(http_config => 'amonitor_zone amonitor 1m;',
    config => 'location = /status { amonitor_status; }')->run;
my $doc = try_decode_json($plain->http_get('/status')->{body} // '');
ok($doc && !exists $doc->{cluster}, 'no "cluster" member without '
    . 'amonitor_cluster');

$t->no_error_log(qr/\[alert\]|exited on signal/);

done_testing;
