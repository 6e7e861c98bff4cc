# amonitor_cluster: a worker asks for a target's lease, Redis gives it,
# and another instance's action for the target reaches the worker's
# channel before the worker has read the answer (the answer and the bus
# come on two connections, and either may be read first), or after the
# answer was lost with the connection.  The action waits for that answer
# (in the second case the worker asks again at once, and finds the lease
# its own), then for the connection it starts, and is acked; it is not
# refused "the target is not connected" by the worker the lease names.
# The answer is held back, or lost, by a proxy in front of Redis.
# And the other way round: an owner whose connection to the SDK dropped
# while its lease's renewal was under way holds the target no more, and
# refuses such an action at once rather than wait for a connection it
# does not make.
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

# instance $name of one worker, prefix $pf, target "$pf-1" at $sdk
sub agent {
    my ($name, $addr, $pf, $sdk) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis $addr prefix=$pf: timeout=3s lease=10s;
    amonitor_cluster on lease=9s;
    amonitor_instance_id $name;
    amonitor_target $pf-1 ${\ $sdk->url };
    amonitor_ack_timeout 8s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

sub lease { $redis->cli('GET', "$_[0]:lease:$_[0]-1") // '' }

sub on_channel {
    my ($pf, $name) = @_;
    return wait_for(sub { $redis->cli('PUBSUB', 'CHANNELS', "$pf:w:*")
        =~ /^\Q$pf\E:w:$name:/m }, 10);
}

sub act {
    my ($p, $pf) = @_;
    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action', target_id => "$pf-1",
        timestamp => now_ms(), payload => { action => 'restart' } });
    return $id;
}

# A behind the proxy, whose try for the lease meets $rule, then B and a
# panel of B: ($sdk, $A, $B, $p)
sub pair {
    my ($pf, $rule, $after_a) = @_;
    my $sdk = fake_sdk(target_id => "$pf-1", heartbeat_interval => 0);
    $proxy->on(qr/^EVAL .* 4 \Q$pf\E:lease:\Q$pf\E-1 \Q$pf\E:state /s, $rule);
    my $A = agent('A', '127.0.0.1:' . $proxy->port, $pf, $sdk);
    $A->ignore_log(qr/redis|lease/) if $rule eq 'cut_after';

    ok(wait_for(sub { lease($pf) =~ /^A:/ }, 5),
        'Redis gives A the lease: ' . lease($pf));
    $after_a->($A) if $after_a;
    ok(on_channel($pf, 'A'), 'A is on its channel');
    is($sdk->accepted, 0, 'A, without the answer, has not dialed the SDK');

    my $B = agent('B', $redis->addr, $pf, $sdk);
    my $p = $B->panel('/ws/panel');
    ok(on_channel($pf, 'B'), 'B is on its channel');
    return ($sdk, $A, $B, $p);
}

# --- the answer comes after the action -----------------------------------

# A's try for the lease: Redis runs it, its answer (and every later
# answer on that connection) is held by the proxy
{
    my ($sdk, $A, $B, $p) = pair('la', 'hold');

    my $id = act($p, 'la');
    my $early = $p->answer_to($id, 1);
    ok(!$early, 'no answer while A waits for its lease\'s answer')
        or diag(encode_json($early));
    is($sdk->executed($id), 0, '... and it has not run');

    $proxy->release;

    ok($p->success_ack($id, 8), 'once A has the answer, the action is acked')
        or diag(encode_json([ $p->answers_to($id) ]));
    is($sdk->executed($id), 1, '... it ran once');
    is($sdk->connections, 1, 'one connection to the SDK (A\'s)');
    like(lease('la'), qr/^A:/, 'A holds the lease');

    my $id2 = act($p, 'la');
    ok($p->success_ack($id2, 5), 'the next action is acked');
    is($sdk->executed($id2), 1, '... and ran once');

    $_->no_error_log(qr/\[alert\]|exited on signal/) for $A, $B;
    $p->close(1000);
    $_->stop for $B, $A;
}

# --- the answer is lost ----------------------------------------------------

# Redis runs A's try, the answer never comes and the connection is cut;
# the next periodic try would be half a lease (5 s) after A is back
{
    my ($sdk, $A, $B, $p) = pair('lb', 'cut_after', sub {
        ok($_[0]->wait_error_log(qr/amonitor: reconnected to redis/, 8),
            'A connected to Redis again after the cut');
    });

    my $id = act($p, 'lb');
    my $first = $p->answer_to($id, 8);
    ok($first && $first->{type} eq 'action_ack' && $first->{payload}{success},
        'A asks for the lease again, finds it its own, and the action is '
        . 'acked') or diag(encode_json($first // {}));
    is($sdk->executed($id), 1, '... it ran once');
    is($sdk->connections, 1, 'one connection to the SDK (A\'s)');
    like(lease('lb'), qr/^A:/, 'A holds the lease');

    $_->no_error_log(qr/\[alert\]|exited on signal/) for $A, $B;
    $p->close(1000);
}

# --- the owner's renewal is under way when its SDK connection drops -------

# A holds the lease and the SDK connection; the answer to its renewal is
# held by the proxy.  A is stopped for a moment: the SDK drops A's
# connection, then B's action for the target is published to A (Redis
# still names it).  A, going on, reads the drop first (it lets the lease
# go, the renewal still unanswered), then the action: refused at once,
# not after half the ack timeout (4 s) as if A were still asking for the
# lease ("the target did not connect in time").
{
    my $pf = 'lc';
    my $sdk = fake_sdk(target_id => "$pf-1", heartbeat_interval => 0);
    my $A = agent('A', '127.0.0.1:' . $proxy->port, $pf, $sdk);
    $A->ignore_log(qr/redis|lease|without a close frame/);
    ok(wait_for(sub { lease($pf) =~ /^A:/ && $sdk->connections == 1 }, 5),
        'A holds the lease and the SDK connection');
    my $B = agent('B', $redis->addr, $pf, $sdk);
    my $p = $B->panel('/ws/panel');
    ok(on_channel($pf, 'A') && on_channel($pf, 'B'),
        'A and B are on their channels');
    my $id = act($p, $pf);
    ok($p->success_ack($id, 5), 'an action from B runs over A\'s connection');

    my $renew = qr/^EVAL .* 5 \Q$pf\E:lease:\Q$pf\E-1 \Q$pf\E:seen /s;
    my $count = sub { scalar grep { $_ =~ $renew } $proxy->commands };
    my $before = $count->();
    $proxy->on($renew, 'hold');
    ok(wait_for(sub { $count->() > $before }, 5),
        'A renews its lease; the answer is held');

    my ($pid) = $A->worker_pids;
    kill 'STOP', $pid;
    $sdk->drop_all;
    my $id2 = act($p, $pf);
    sleep_loop(0.3);
    like(lease($pf), qr/^A:/, 'Redis names A while A is stopped');
    kill 'CONT', $pid;
    my $t0 = now_ms();

    my $answer = $p->answer_to($id2, 3.5);
    my $ms = now_ms() - $t0;
    ok($answer && ($answer->{payload}{code} // '') eq 'TARGET_UNAVAILABLE'
        && ($answer->{payload}{message} // '') =~ /not connected/,
        "A refuses the action: the target is not connected (${ms} ms)")
        or diag(encode_json($answer // {}));
    cmp_ok($ms, '<', 2000, '... at once, not after half the ack timeout');
    is($sdk->executed($id2), 0, '... and it has not run');

    $proxy->release;
    $_->no_error_log(qr/\[alert\]|exited on signal/) for $A, $B;
    $p->close(1000);
    $_->stop for $B, $A;
}

done_testing;
