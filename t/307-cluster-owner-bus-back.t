# amonitor_cluster when an instance starts while the owner of a target
# has lost its bus (its Redis connections cut and refused for a moment,
# shorter than its lease): the new instance learns the target from the
# routes but nobody answers its question about who holds it.  Once the
# owner's bus is back, the owner tells every instance what it holds, so
# the new instance's panels are told the target is up, without anyone
# dialing the SDK a second time.  Starts its own redis-server and a proxy
# in front of it for the owner.

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
my $rport = $redis->port;
my $proxy = Test::AMonitor::RedisProxy->new(redis_port => $rport);

my $sdk = fake_sdk(target_id => 'ob-1', heartbeat_interval => 0);
my $sport = $sdk->port;

sub agent {
    my ($name, $port, $targets) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$port prefix=ob: timeout=300ms;
    amonitor_cluster on lease=6s;
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

sub states {
    my ($p) = @_;
    return join ' ', map { $_->{json}{payload}{state} } grep {
        ref $_->{json} eq 'HASH'
            && ($_->{json}{type} // '') eq 'target_status'
            && ($_->{json}{target_id} // '') eq 'ob-1' } $p->messages;
}

sub last_state { (split ' ', states($_[0]))[-1] // 'none' }

# O (behind the proxy) holds the SDK
my $O = agent('O', $proxy->port,
    "    amonitor_target ob-1 ws://127.0.0.1:$sport/;");
ok($sdk->wait_connections(1, 5), 'O dialed the SDK');
ok(wait_for(sub { $redis->cli('HGET', 'ob:routes', 'ob-1') ne '' }, 5),
    'its route is in redis');

# O's bus is cut; its lease (6 s) outlives the cut
$O->mark_log;
$proxy->refuse(1);
$proxy->drop_all;
ok($O->wait_error_log(qr/lost the connection to redis/, 3),
    'O lost its redis connections');

my $N = agent('N', $rport, '');
ok($N->wait_error_log(qr/learned target "ob-1" .* from the cluster/, 5),
    'N learned the target from the routes');
my $p = $N->panel('/ws/panel');
sleep_loop(1);
isnt(last_state($p), 'up', 'nobody told N the target is up yet')
    or diag(states($p));

$proxy->refuse(0);
ok($O->wait_error_log(qr/cluster bus subscribed/, 5), 'O subscribed again');
ok(wait_for(sub { last_state($p) eq 'up' }, 4),
    'the panel on N is told the target is up') or diag(states($p));
my $q = $N->panel('/ws/panel');
ok(wait_for(sub { last_state($q) eq 'up' }, 3),
    'a new panel on N is told it is up') or diag(states($q));

my $id = uuid4();
$p->send_json({ msg_id => $id, type => 'action', target_id => 'ob-1',
    timestamp => now_ms(), payload => { action => 'restart' } });
my $a = $p->answer_to($id, 5);
ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
    'an action through N is acked') or diag(encode_json($a // {}));
is($sdk->executed($id), 1, 'the SDK ran it once');
is($sdk->accepted, 1, 'the SDK was dialed once');
$N->no_error_log(qr/holds the connection to target/);

done_testing;
