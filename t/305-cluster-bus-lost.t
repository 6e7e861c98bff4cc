# amonitor_cluster when one instance loses its bus (its Redis connections
# cut and refused for a while) and gets it back: the state changes of the
# targets another instance holds that it missed meanwhile are not lost in
# silence.  A target still held is confirmed by its owner (no "down"); a
# target that went down meanwhile is told "down" to the panels of the
# instance that missed it (and to the snapshots of new ones), and "up"
# again once its owner has it back.  Starts its own redis-server and a
# proxy in front of it for instance A.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::RedisProxy;

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;
my $proxy = Test::AMonitor::RedisProxy->new(redis_port => $rport);

my $sdk = fake_sdk(target_id => 'bl-1', heartbeat_interval => 0);
my $sport = $sdk->port;

sub agent {
    my ($name, $port, $targets) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$port prefix=bl: timeout=300ms;
    amonitor_cluster on lease=900ms;
    amonitor_instance_id $name;
$targets
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 2s;
    amonitor_reconnect 50ms 200ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on;'
            . ' amonitor_panel_snapshot on; }')->run;
    return $t;
}

# B holds the SDK; A (behind the proxy) learns it from the routes
my $B = agent('B', $rport, "    amonitor_target bl-1 ws://127.0.0.1:$sport/;");
ok($sdk->wait_connections(1, 5), 'B dialed the SDK');
my $A = agent('A', $proxy->port, '');
ok($A->wait_error_log(qr/learned target "bl-1" .* from the cluster/, 5),
    'A learned the target');
sleep_loop(1);

sub states {
    my ($p) = @_;
    return join ' ', map { $_->{json}{payload}{state} } grep {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
            && ($_->{json}{target_id} // '') eq 'bl-1' } $p->messages;
}

sub last_state { (split ' ', states($_[0]))[-1] // 'none' }

my $p = $A->panel('/ws/panel');
ok(wait_for(sub { last_state($p) eq 'up' }, 5),
    'a panel on A is told the target is up');

# A's bus is cut, and kept away for a while
sub cut {
    $proxy->refuse(1);
    $proxy->drop_all;
}

sub back {
    $proxy->refuse(0);
    ok($A->wait_error_log(qr/cluster bus subscribed/, 5),
        'A subscribed again');
}

subtest 'a target still held while the bus was lost: no "down"' => sub {
    $A->mark_log;
    cut();
    sleep_loop(0.5);
    back();
    sleep_loop(2);
    is(last_state($p), 'up', 'the panel on A still has it up');
    unlike(states($p), qr/down/, 'and was never told down');
    $A->no_error_log(qr/no worker of the cluster holds/);
};

subtest 'a target lost while the bus was lost: told down, then up' => sub {
    $A->mark_log;
    cut();
    $sdk->stop;
    ok($B->wait_error_log(qr/bl-1/, 3), 'B saw the SDK go');
    sleep_loop(0.5);
    back();
    ok(wait_for(sub { last_state($p) eq 'down' }, 4),
        'the panel on A is told the target is down')
        or diag(states($p));
    # told by the check after the subscribe, or by A's own dial: A may
    # take the free lease first, and a target it had up that it cannot
    # reach is told down to the cluster
    ok($A->wait_error_log(qr/\[warn\].*no worker of the cluster holds (?#
        )target "bl-1" after the cluster bus was lost|(?#
        )\[error\].*cannot connect to the SDK.*upstream: bl-1,/, 1),
        'A says why');
    my $q = $A->panel('/ws/panel');
    ok(wait_for(sub { last_state($q) eq 'down' }, 3),
        'a new panel on A is told down') or diag(states($q));

    $sdk->start;
    ok($sdk->wait_connections(1, 10), 'the SDK is dialed again');
    ok(wait_for(sub { last_state($p) eq 'up' }, 5),
        'the panel on A is told it is up again');
};

done_testing;
