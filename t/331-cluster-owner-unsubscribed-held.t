# amonitor_cluster: an action for a target whose owner is alive and holds
# its lease but is not on its channel for a moment (its subscriber
# connection to Redis was lost and comes back after its reconnect
# delay), sent from an instance that started meanwhile and so has not
# heard the target's state.  The script finds the lease and nobody on
# the owner's channel (0): the action waits for the owner and runs once
# it is back, rather than being refused at once ("the agent holding the
# target's connection is gone").  Starts its own redis-server.

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

my $sdk = fake_sdk(target_id => 'us-1', heartbeat_interval => 0);

sub agent {
    my ($name, $reconnect) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis ${\ $redis->addr } prefix=us: timeout=300ms;
    amonitor_cluster on lease=2s;
    amonitor_instance_id $name;
    amonitor_target us-1 ${\ $sdk->url };
    amonitor_ack_timeout 20s;
    amonitor_reconnect $reconnect;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /status { amonitor_status; }')->run;
    $t->ignore_log(qr/redis .*(?:closed|lost|disconnected)|connect\(\) failed/);
    return $t;
}

sub owner { ($redis->cli('GET', 'us:lease:us-1') =~ /^(\w+):/)[0] // '' }
sub subscribers { (split /\n/, $redis->cli('PUBSUB', 'NUMSUB', 'us:rt'))[1] }

# A comes back to Redis 5 to 10 s after it lost a connection: time for B
# to start and send its action before A is back on its channel, also on a
# loaded machine (B's start has taken more than 2.5 s there, and A, back
# by then, answered B's question: B had heard that us-1 is up)
my $A = agent('A', '10s 10s');
ok(wait_for(sub { owner() eq 'A' && $sdk->connections == 1 }, 5),
    'A holds the lease and the SDK connection');
ok(wait_for(sub { subscribers() == 1 }, 5), 'A is subscribed');
# A tells the cluster "up" once its handshake with the SDK is done, which
# can be after the SDK counted the connection: B must not start before
ok(wait_for(sub { ($A->http_get('/status')->{body} // '')
        =~ /"id":"us-1"[^}]*"state":"up"[^}]*"remote":false/ }, 5),
    'A has the SDK connection open (and has said so)');
# and its word of it is through Redis before its subscriber is cut
sleep_loop(1);

my $cut = now_ms();
$redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
ok(wait_for(sub { subscribers() == 0 }, 2),
    'A\'s subscriber connection is gone');

my $B = agent('B', '50ms 300ms');
ok(wait_for(sub { subscribers() == 1 }, 5), 'B is subscribed');
unlike($B->http_get('/status')->{body} // '', qr/"id":"us-1"[^}]*"state":"up"/,
    'B has not heard that us-1 is up')
    or diag(sprintf('checked %d ms after the cut, %d subscriber(s)',
        now_ms() - $cut, subscribers()));
is(owner(), 'A', 'A still holds the lease (renewed on its other connection)');

my $p = $B->panel('/ws/panel');
my $id = uuid4();
my $sent = now_ms();
$p->send_json({ msg_id => $id, type => 'action', target_id => 'us-1',
    timestamp => now_ms(), payload => { action => 'restart' } });
is(subscribers(), 1, 'the action is sent while A is away ('
    . ($sent - $cut) . ' ms after the cut)');

my $ack = $p->success_ack($id, 15);
ok($ack, 'the action is acked by the SDK')
    or diag(encode_json([ $p->answers_to($id) ]));
my $waited = now_ms() - $sent;
ok(!(grep { $_->{type} eq 'error' } $p->answers_to($id)),
    '... with no error before it');
ok(wait_for(sub { $sdk->executed($id) == 1 }, 2), '... and ran once');
cmp_ok($waited, '>=', 300, "... after it waited for A ($waited ms)");
is($A->log_count(qr/cluster bus subscribed/), 2, 'A subscribed again');
is($sdk->accepted, 1, 'the SDK was dialed once');
is(owner(), 'A', 'A still holds the lease');

$p->close(1000);

done_testing;
