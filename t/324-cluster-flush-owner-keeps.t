# amonitor_cluster when Redis loses its data (FLUSHALL) under two running
# instances that both have the same targets: the leases are gone, and a
# worker of the other instance must not take them before their owners
# renew them, or the owner closes its SDK connection ("lost the lease")
# with its actions in flight.  Each SDK keeps the one connection it had.
# When the owner is gone as well, another instance still takes over.
# Starts its own redis-server.

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

my @ids = map { "fl-$_" } 1 .. 6;
my %sdk = map { $_ => fake_sdk(target_id => $_, heartbeat_interval => 0) }
    @ids;
my $targets = join "\n",
    map { "    amonitor_target $_ ws://127.0.0.1:" . $sdk{$_}->port . '/;' }
    @ids;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 2, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=fl: timeout=300ms;
    amonitor_cluster on lease=900ms;
    amonitor_instance_id $name;
$targets
    amonitor_ack_timeout 2s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

my $A = agent('A');
my $B = agent('B');

ok(wait_for(sub { !grep { $sdk{$_}->connections != 1 } @ids }, 8),
    'each SDK is dialed once by the cluster')
    or diag(join ' ', map { "$_=" . $sdk{$_}->connections } @ids);
sleep_loop(1);    # a few renewals: the owners settled

my %holder = map { $_ => $redis->cli('GET', "fl:lease:$_") } @ids;
ok(!grep({ $holder{$_} eq '' } @ids), 'every target has a lease holder');

for my $round (1 .. 4) {
    is($redis->cli('FLUSHALL'), 'OK', "round $round: FLUSHALL");
    ok(wait_for(sub { !grep { $redis->cli('GET', "fl:lease:$_") eq '' }
        @ids }, 3), "round $round: every lease is held again");
    my @moved = grep { $redis->cli('GET', "fl:lease:$_") ne $holder{$_} }
        @ids;
    is("@moved", '', "round $round: each by the worker that held it");
    sleep_loop(0.5 + rand(0.5));    # FLUSHALL at another point of the
                                    # renewal period each round
}

is(join(' ', map { $sdk{$_}->accepted } @ids), join(' ', (1) x @ids),
    'no SDK was dialed again');
is($A->log_count(qr/lost the lease/) + $B->log_count(qr/lost the lease/), 0,
    'no owner lost its lease');

# an action through each instance still reaches each target
for my $t ($A, $B) {
    my $p = $t->panel('/ws/panel');
    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'fl-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    my $a = $p->answer_to($id, 5);
    ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
        'an action is acked') or diag(encode_json($a // {}));
    is($sdk{'fl-1'}->executed($id), 1, 'and ran once');
    $p->close(1000);
}

subtest 'data lost and its owners gone: the other instance takes over' => sub {
    # A's workers hold some of the leases; they go with A right after a
    # FLUSHALL, so nothing in Redis tells B about them
    $redis->cli('FLUSHALL');
    $A->stop;
    ok(wait_for(sub { !grep { $redis->cli('GET', "fl:lease:$_") eq '' }
        @ids }, 5), 'every lease is held by B')
        or diag(join ' ', map { "$_=" . $redis->cli('GET', "fl:lease:$_") }
        @ids);
    ok(wait_for(sub { !grep { $sdk{$_}->connections != 1 } @ids }, 5),
        'each SDK has one connection again');
    my $p = $B->panel('/ws/panel');
    for my $id (@ids) {
        my $m = uuid4();
        $p->send_json({ msg_id => $m, type => 'action', target_id => $id,
            timestamp => now_ms(), payload => { action => 'restart' } });
        my $a = $p->answer_to($m, 5);
        ok($a && $a->{type} eq 'action_ack', "$id acts through B")
            or diag(encode_json($a // {}));
    }
    $p->close(1000);
};

done_testing;
