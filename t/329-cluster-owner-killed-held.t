# amonitor_cluster: the worker holding a target's connection is killed
# (kill -9) while panels of another instance send actions to it.  The
# target was up, so each action waits for the next owner instead of being
# refused ("the agent holding the target's connection is gone", then "no
# agent in the cluster holds a connection"): once a worker has taken the
# lease over and dialed, the action runs there, once.  First the whole
# owning instance dies (master and worker): the asking worker takes the
# lease itself and runs the actions it held on its own new connection.
# Then only the owning worker dies and is respawned: whoever takes the
# lease runs them.  A target that is down is still refused at once.
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

my $sdk = fake_sdk(target_id => 'fk-1', heartbeat_interval => 0);
my $down = fake_sdk(target_id => 'fk-2', heartbeat_interval => 0);

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis ${\ $redis->addr } prefix=fk: timeout=300ms;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target fk-1 ${\ $sdk->url };
    amonitor_target fk-2 ${\ $down->url };
    amonitor_ack_timeout 8s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }'
            . ' location = /status { amonitor_status; }')->run;
    $t->ignore_log(qr/exited on signal 9|connect\(\) failed|cannot connect/);
    return $t;
}

sub owner { ($redis->cli('GET', "fk:lease:$_[0]") =~ /^(\w+):/)[0] // '' }

my $A = agent('A');
ok(wait_for(sub { owner('fk-1') eq 'A' && owner('fk-2') eq 'A' }, 5),
    'A holds both leases');
ok(wait_for(sub { $sdk->connections == 1 && $down->connections == 1 }, 5),
    'and both SDK connections');
my $B = agent('B');
my $p = $B->panel('/ws/panel');
ok(wait_for(sub { $redis->cli('PUBSUB', 'NUMSUB', 'fk:rt') eq "fk:rt\n2" },
    5), 'both instances are subscribed');
sleep_loop(0.5);

sub action {
    my ($id, $target) = @_;
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => $target // 'fk-1', timestamp => now_ms(),
        payload => { action => 'restart' } });
}

# actions sent over $secs seconds, one every 100 ms
sub burst {
    my ($secs) = @_;
    my @ids;
    my $end = now_ms() + $secs * 1000;
    while (now_ms() < $end) {
        push @ids, uuid4();
        action($ids[-1]);
        sleep_loop(0.1);
    }
    return @ids;
}

sub all_ran {
    my ($what, @ids) = @_;
    my @miss = grep { !$p->success_ack($_, 10) } @ids;
    is(scalar @miss, 0, "$what: each of " . @ids . ' actions is acked')
        or diag(encode_json([ map { [ $p->answers_to($_) ] } @miss ]));
    is((grep { $sdk->executed($_) == 1 } @ids), scalar @ids,
        "$what: each ran once");
    is((grep { ($_->{type} // '') eq 'error' } map { $p->answers_to($_) }
        @ids), 0, "$what: no error");
}

# --- the whole owning instance dies: B takes the lease, runs them -------

my @pids = ($A->master_pid, $A->worker_pids);
ok(kill('KILL', @pids) == @pids, 'A\'s master and worker are killed');
# (an action published before Redis saw the worker's connection close is
# lost with it: ACK_TIMEOUT, "may still run")
sleep_loop(0.3);
my @ids = burst(1.5);
ok(wait_for(sub { owner('fk-1') eq 'B' }, 5), 'B takes the lease');
all_ran('A killed', @ids);
is($sdk->accepted, 2, 'the SDK was dialed once more, by B');

# --- a target that is down is refused at once ---------------------------

ok(wait_for(sub { owner('fk-2') eq 'B' }, 5), 'B holds fk-2 too');
$down->stop;
sleep_loop(1);
my $id = uuid4();
my $t0 = now_ms();
action($id, 'fk-2');
my $a = $p->answer_to($id, 5);
ok($a && $a->{type} eq 'error' && $a->{payload}{code} eq 'TARGET_UNAVAILABLE',
    'an action to a target that is down: TARGET_UNAVAILABLE')
    or diag(encode_json($a // {}));
cmp_ok(now_ms() - $t0, '<', 1000, '... at once');

# --- only the owning worker dies: whoever takes the lease runs them -----

my $C = agent('C');
# B hands fk-1 over: C waits for its chance, B is killed below
ok(wait_for(sub { $redis->cli('PUBSUB', 'NUMSUB', 'fk:rt') eq "fk:rt\n2" },
    5), 'C is subscribed');
# C has heard from the owner that fk-1 is up (what an action's wait needs)
ok(wait_for(sub { ($C->http_get('/status')->{body} // '')
    =~ /"id":"fk-1"[^}]*"state":"up","remote":true/ }, 5),
    'C\'s status: fk-1 is up at its owner');
my $q = $C->panel('/ws/panel');
$p->close(1000);
$p = $q;
my ($w) = $B->worker_pids;
ok(kill('KILL', $w), "B's worker ($w) is killed");
sleep_loop(0.3);
@ids = burst(1.5);
ok(wait_for(sub { owner('fk-1') =~ /^[BC]$/ }, 5),
    'a worker of B (respawned) or C takes the lease: ' . owner('fk-1'));
all_ran('B\'s worker killed', @ids);
is($sdk->accepted, 3, 'the SDK was dialed once more');
$p->close(1000);

done_testing;
