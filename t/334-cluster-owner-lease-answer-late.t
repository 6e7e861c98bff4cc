# amonitor_cluster: a worker asks for a target's lease, Redis gives it,
# and another instance's action for the target reaches the worker's
# channel before the lease's answer does (the answer and the bus come on
# two connections, and either may be read first).  The action waits for
# that answer, then for the connection it starts, and is acked; it is not
# refused "the target is not connected" by the worker that holds the
# lease.  Here the answer is held back by a proxy in front of Redis.
# Starts its own redis-server and a fault proxy.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::RedisProxy;
use Mojo::JSON qw(encode_json);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $proxy = Test::AMonitor::RedisProxy->new(redis_port => $redis->port);

my $sdk = fake_sdk(target_id => 'la-1', heartbeat_interval => 0);

sub agent {
    my ($name, $addr) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis $addr prefix=la: timeout=3s lease=10s;
    amonitor_cluster on lease=9s;
    amonitor_instance_id $name;
    amonitor_target la-1 ${\ $sdk->url };
    amonitor_ack_timeout 6s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

sub lease { $redis->cli('GET', 'la:lease:la-1') // '' }

# A's try for the lease: Redis runs it, its answer (and every later
# answer on that connection) is held by the proxy
$proxy->on(qr/^EVAL .* 4 la:lease:la-1 la:state /s, 'hold');
my $A = agent('A', '127.0.0.1:' . $proxy->port);

ok(wait_for(sub { lease() =~ /^A:/ }, 5), 'Redis gives A the lease: ' . lease());
ok(wait_for(sub { grep { /^la:w:A:/m } $redis->cli('PUBSUB', 'CHANNELS',
    'la:w:*') }, 5), 'A is on its channel');
is($sdk->accepted, 0, 'A, without the answer, has not dialed the SDK');

my $B = agent('B', $redis->addr);
my $p = $B->panel('/ws/panel');
ok(wait_for(sub { grep { /^la:w:B:/m } $redis->cli('PUBSUB', 'CHANNELS',
    'la:w:*') }, 5), 'B is on its channel');
sleep_loop(0.5);

my $id = uuid4();
$p->send_json({ msg_id => $id, type => 'action', target_id => 'la-1',
    timestamp => now_ms(), payload => { action => 'restart' } });

# before the answer: the action waits at A
my $early = $p->answer_to($id, 1);
ok(!$early, 'no answer while A waits for its lease\'s answer')
    or diag(encode_json($early));
is($sdk->executed($id), 0, '... and it has not run');

$proxy->release;

ok($p->success_ack($id, 5), 'once A has the answer, the action is acked')
    or diag(encode_json([ $p->answers_to($id) ]));
is($sdk->executed($id), 1, '... it ran once');
is($sdk->connections, 1, 'one connection to the SDK (A\'s)');
like(lease(), qr/^A:/, 'A holds the lease');

# later actions go the usual way
my $id2 = uuid4();
$p->send_json({ msg_id => $id2, type => 'action', target_id => 'la-1',
    timestamp => now_ms(), payload => { action => 'restart' } });
ok($p->success_ack($id2, 5), 'the next action is acked');
is($sdk->executed($id2), 1, '... and ran once');

$A->no_error_log(qr/\[alert\]|exited on signal/);
$B->no_error_log(qr/\[alert\]|exited on signal/);

done_testing;
