# amonitor_cluster: the first action for a new target_url waits for the
# answer to this worker's try for the target's lease.  When Redis takes
# the lease but its reply is lost with the connection, the
# waiting action is answered TARGET_UNAVAILABLE (final, released, never
# run); the lease in Redis is this worker's own.  The next action, once
# Redis is back, asks again and learns that the lease is its own: it
# dials and runs, rather than being handed to this very worker as to
# another owner and refused ("the target is not connected") until the
# lease expires.  Starts its own redis-server and a fault proxy.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::RedisProxy;
use Mojo::JSON qw(encode_json);
use Time::HiRes qw(sleep);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $proxy = Test::AMonitor::RedisProxy->new(redis_port => $redis->port);
my $pport = $proxy->port;

my $A = Test::AMonitor->new(workers => 1, log_level => 'info');
$A->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$pport prefix=lr: timeout=500ms;
    amonitor_cluster on lease=8s;
    amonitor_instance_id A;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 3s;
    amonitor_reconnect 50ms 300ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }')->run;

my $pa = $A->panel('/ws/panel', name => 'a');
sleep 1; # A on the bus

sub act {
    my ($id, $sdk) = @_;
    $pa->send_json({ msg_id => $id, type => 'action', target_id => 'lr-1',
        timestamp => now_ms(), payload => { action => 'restart',
            target_url => $sdk->url } });
    return $pa->answer_to($id, 6);
}

my $sdk = fake_sdk(target_id => 'lr-1', heartbeat_interval => 0);

# Redis runs the lease's SET; its reply is lost with the connection
$proxy->on(qr/^EVAL .* 4 lr:lease:lr-1 lr:state lr:lost lr:routes /s, 'cut_after');
my $id = uuid4();
my $a = act($id, $sdk);
ok($a && $a->{type} eq 'error' && $a->{payload}{code} eq 'TARGET_UNAVAILABLE'
    && $a->{payload}{final}, 'the waiting action: TARGET_UNAVAILABLE, final')
    or diag(encode_json($a // {}));
is($sdk->executed($id), 0, 'not run');

# Redis is back for the worker (it reconnects within a second), well
# before the lease (8 s) expires
sleep 1.5;
like($redis->cli('GET', 'lr:lease:lr-1') // '', qr/^A:/,
    'the lease Redis took is A\'s');

my $b = act($id, $sdk);
ok($b && $b->{type} eq 'action_ack' && $b->{payload}{success},
    'a retry with the same msg_id is acked at once')
    or diag(encode_json($b // {}));
is($sdk->executed($id), 1, 'it ran once');
is($sdk->accepted, 1, 'the SDK was dialed once');
like($redis->cli('GET', 'lr:lease:lr-1') // '', qr/^A:/, 'A holds its lease');

$A->no_error_log(qr/\[alert\]|exited on signal/);

done_testing;
