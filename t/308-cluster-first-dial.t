# amonitor_cluster: an action whose target_url names a target no instance
# holds yet waits for the dial it starts, as it does outside a cluster:
# the instance that got it asks for the target's lease first, dials the
# SDK when the lease is its own, and writes the action once connected.
# An instance that asks for a lease another one holds hands the actions
# that waited for the answer to the owner.  Starts its own redis-server.

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

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=fd: timeout=500ms;
    amonitor_cluster on lease=3s;
    amonitor_instance_id $name;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 3s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

sub act {
    my ($p, $id, $target, $sdk) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(), payload => { action => 'restart',
            target_url => $sdk->url } });
    return $p->answer_to($id, 6);
}

my $A = agent('A');
my $pa = $A->panel('/ws/panel', name => 'a');

subtest 'the first action for a new target_url waits for the dial' => sub {
    my $sdk = fake_sdk(target_id => 'fd-1', heartbeat_interval => 0);
    my $id = uuid4();
    my $a = act($pa, $id, 'fd-1', $sdk);
    ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
        'it is acked') or diag(encode_json($a // {}));
    is($sdk->executed($id), 1, 'the SDK ran it once');
    is($sdk->accepted, 1, 'the SDK was dialed once');
    like($redis->cli('GET', 'fd:lease:fd-1'), qr/^A:/,
        'A holds its lease');

    my $d = act($pa, $id, 'fd-1', $sdk);
    ok($d && $d->{type} eq 'action_ack' && $d->{payload}{duplicate},
        'its repeat is a duplicate') or diag(encode_json($d // {}));
    is($sdk->executed($id), 1, 'and was not run again');
};

subtest 'several actions for one new target wait together' => sub {
    my $sdk = fake_sdk(target_id => 'fd-2', heartbeat_interval => 0);
    my @ids = map { uuid4() } 1 .. 3;
    for my $id (@ids) {
        $pa->send_json({ msg_id => $id, type => 'action',
            target_id => 'fd-2', timestamp => now_ms(),
            payload => { action => 'restart', target_url => $sdk->url } });
    }
    for my $id (@ids) {
        my $a = $pa->answer_to($id, 6);
        ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
            "$id is acked") or diag(encode_json($a // {}));
        is($sdk->executed($id), 1, 'run once');
    }
    is($sdk->accepted, 1, 'the SDK was dialed once');
};

subtest 'another instance asking for a lease A holds hands them to A' => sub {
    my $sdk = fake_sdk(target_id => 'fd-3', heartbeat_interval => 0);
    my $id = uuid4();
    my $a = act($pa, $id, 'fd-3', $sdk);
    ok($a && $a->{payload}{success}, 'A dialed fd-3 for its panel');

    # B starts now: the route and the lease are A's; its first action
    # for fd-3 (named by its URL) waits for B's try for the lease, which
    # fails, then goes to A
    my $B = agent('B');
    my $pb = $B->panel('/ws/panel', name => 'b');
    my $id2 = uuid4();
    my $b = act($pb, $id2, 'fd-3', $sdk);
    ok($b && $b->{type} eq 'action_ack' && $b->{payload}{success},
        'an action through B is acked') or diag(encode_json($b // {}));
    is($sdk->executed($id2), 1, 'the SDK ran it once');
    is($sdk->accepted, 1, 'the SDK was dialed once, by A');
    $B->no_error_log(qr/holds the connection to target "fd-3"/);
};

done_testing;
