# amonitor_cluster when Redis loses its data under running instances
# (FLUSHALL, and a restart without persistence): the owners write their
# targets' routes again, a configured one and one learned from a
# register, so that an instance started afterwards learns both and acts
# on them, with the SDKs still dialed once.  Starts its own redis-server.

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
my $rport = $redis->port;

my $hub = fake_sdk(target_id => 'rl-hub', heartbeat_interval => 0);
my $reg = fake_sdk(target_id => 'rl-reg', heartbeat_interval => 0);
my $hport = $hub->port;

sub agent {
    my ($name, $targets) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=rl: timeout=300ms;
    amonitor_cluster on lease=900ms;
    amonitor_instance_id $name;
$targets
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 2s;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

# the hub is configured on A only; rl-reg registers through the hub
my $A = agent('A', "    amonitor_target rl-hub ws://127.0.0.1:$hport/;");
ok($hub->wait_connections(1, 5), 'the hub is dialed');
my ($cid) = $hub->conn_ids;
$hub->send_to($cid, { msg_id => uuid4(), type => 'register',
    target_id => 'rl-reg', timestamp => now_ms(),
    payload => { target_id => 'rl-reg', sdk_url => $reg->url } });
ok($reg->wait_connections(1, 5), 'the registered SDK is dialed');
ok(wait_for(sub { $redis->cli('HGET', 'rl:routes', 'rl-reg') ne '' }, 5),
    'its route is in redis');

# (the owner's next renewal, within lease/3, writes the routes again)
is($redis->cli('FLUSHALL'), 'OK', 'redis loses everything (FLUSHALL)');

subtest 'the owners write their routes again' => sub {
    ok(wait_for(sub {
        $redis->cli('HGET', 'rl:routes', 'rl-hub') =~ m{^ws://127\.0\.0\.1:$hport/\nconfig\nA$}
    }, 3), 'the configured target\'s route is back')
        or diag($redis->cli('HGETALL', 'rl:routes'));
    ok(wait_for(sub {
        $redis->cli('HGET', 'rl:routes', 'rl-reg') =~ m{\nregister\nA$}
    }, 3), 'the registered target\'s route is back, as registered');
};

subtest 'the same after a restart of redis without its data' => sub {
    $A->mark_log;
    $redis->stop;
    ok($redis->start, 'redis-server runs again, empty');
    # (actions through another instance reach A once its bus is back)
    ok($A->wait_error_log(qr/cluster bus subscribed/, 5),
        'A subscribed again');
    ok(wait_for(sub {
        $redis->cli('HGET', 'rl:routes', 'rl-reg') =~ m{\nregister\nA$}
    }, 5), 'the registered target\'s route is back');
    like($redis->cli('HGET', 'rl:routes', 'rl-hub'), qr{\nconfig\nA$},
        'and the configured one\'s');
};

subtest 'an instance started afterwards knows both targets' => sub {
    my $C = agent('C', '');
    for my $id (qw(rl-hub rl-reg)) {
        ok($C->wait_error_log(qr/learned target "$id" .* from the cluster/,
            5), "C learned $id");
    }
    my $p = $C->panel('/ws/panel');
    for my $pair ([ 'rl-hub', $hub ], [ 'rl-reg', $reg ]) {
        my ($target, $sdk) = @$pair;
        my $id = uuid4();
        $p->send_json({ msg_id => $id, type => 'action',
            target_id => $target, timestamp => now_ms(),
            payload => { action => 'restart' } });
        my $a = $p->answer_to($id, 5);
        ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
            "an action for $target through C is acked")
            or diag(encode_json($a // {}));
        is($sdk->executed($id), 1, "$target ran it once");
    }
    is($hub->accepted, 1, 'the hub was dialed once');
    is($reg->accepted, 1, 'the registered SDK was dialed once');
};

done_testing;
