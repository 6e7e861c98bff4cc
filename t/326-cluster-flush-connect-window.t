# amonitor_cluster when Redis loses its data (FLUSHALL) and a worker
# connects to Redis right after it, before the owners renew: an instance
# that starts, workers whose connections were killed, Redis restarted
# without its data, an instance that reloads, a worker that the master
# respawns.  Such a worker writes its
# configured routes at once; that must not let anybody take the lease of
# a target whose owner is alive (the owner would close its SDK connection,
# "lost the lease").  Starts its own redis-server.

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

my @ids = map { "fw-$_" } 1 .. 6;
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
    amonitor_redis 127.0.0.1:$rport prefix=fw: timeout=300ms;
    amonitor_cluster on lease=900ms;
    amonitor_instance_id $name;
$targets
    amonitor_ack_timeout 2s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

sub holders { return map { $_ => $redis->cli('GET', "fw:lease:$_") } @ids }

sub settled {
    ok(wait_for(sub {
        !grep { $redis->cli('GET', "fw:lease:$_") eq ''
            || $sdk{$_}->connections != 1 } @ids }, 8),
        'every target has a holder and one SDK connection')
        or diag(join ' ', map { "$_=" . $sdk{$_}->connections } @ids);
    sleep_loop(1);    # a few renewals
}

my $A = agent('A');
my $B = agent('B');
settled();

my $lost = 0;

# FLUSHALL, then $trigger at once; the leases of @keep (holders alive
# through it) must stay where they were, their SDKs never dialed again
sub round {
    my ($name, $trigger, $alive) = @_;
    my %before = holders();
    my %accepted = map { $_ => $sdk{$_}->accepted } @ids;
    my @keep = grep { $alive->($before{$_}) } @ids;

    is($redis->cli('FLUSHALL'), 'OK', "$name: FLUSHALL");
    $trigger->();
    ok(wait_for(sub { !grep { $redis->cli('GET', "fw:lease:$_") eq '' }
        @ids }, 5), "$name: every lease is held again");
    my %after = holders();
    my @moved = grep { $after{$_} ne $before{$_} } @keep;
    is("@moved", '', "$name: the leases of live owners (" . @keep . ") "
        . 'stayed with them')
        or diag(join "\n", map { "$_: $before{$_} -> $after{$_}" } @moved);
    my @redialed = grep { $sdk{$_}->accepted != $accepted{$_} } @keep;
    is("@redialed", '', "$name: their SDKs were not dialed again");
    my $n = $A->log_count(qr/lost the lease/)
        + $B->log_count(qr/lost the lease/);
    is($n - $lost, 0, "$name: no owner lost its lease");
    $lost = $n;
    settled();
}

# an instance that starts: it takes nothing
my $C;
round('instance start', sub { $C = agent('C') }, sub { 1 });
is(scalar(grep { $redis->cli('GET', "fw:lease:$_") =~ /^C:/ } @ids), 0,
    'the instance that started holds no lease');
$C->stop;
sleep_loop(0.5);

# every worker's connections killed: each connects again at once
round('connections killed', sub {
    $redis->cli('CLIENT', 'KILL', 'TYPE', 'normal');
    $redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
}, sub { 1 });

# only the subscriber connections killed: nobody is counted on the owners
# channel for a moment, and the routes are gone
round('subscriber connections killed', sub {
    $redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
}, sub { 1 });

# Redis restarted without its data: every connection comes back at once
round('redis restarted empty', sub { $redis->stop; $redis->start },
    sub { 1 });

# B reloads: its old workers give their leases up, A keeps its own
round('reload', sub { $B->reload }, sub { $_[0] =~ /^A:/ });

# a worker that holds leases killed: the master starts another one at
# once; the killed one's leases are taken a lease later, the others stay
my %h = holders();
my ($vname, $victim) = $h{ $ids[0] } =~ /^(A|B):(\d+):/;
my $V = $vname eq 'A' ? $A : $B;
$V->ignore_log(qr/worker process $victim exited on signal 9/);
round('worker respawned', sub { kill 'KILL', $victim },
    sub { $_[0] !~ /^$vname:$victim:/ });

# an action through each instance still reaches each target
for my $t ($A, $B) {
    my $p = $t->panel('/ws/panel');
    for my $id (@ids) {
        my $m = uuid4();
        $p->send_json({ msg_id => $m, type => 'action', target_id => $id,
            timestamp => now_ms(), payload => { action => 'restart' } });
        my $a = $p->answer_to($m, 5);
        ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
            "$id acts") or diag(encode_json($a // {}));
    }
    $p->close(1000);
}

done_testing;
