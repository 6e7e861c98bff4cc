# amonitor_cluster with Redis as the dedupe store: a claim whose workers
# die is not claimed again.
#
# 1. The worker that owns k1's connection is killed (kill -9) while k1
#    runs an action one of its own panels asked for.  Nobody renews or
#    ends that claim.  It is kept for its lease plus amonitor_dedupe_ttl,
#    so after the lease it is still there, lost: a retry through the
#    other instance is a duplicate that failed (TARGET_DISCONNECTED: the
#    outcome is not known), and action_status says the same.  Before, the
#    claim expired with its lease, the retry claimed the msg_id anew and
#    k1 ran the action a second time.
# 2. msg_ids that name the module's own keys ("lease:" + a target,
#    "routes", "seen", "id:" + ...) are claimed under
#    "id:" + msg_id: a panel cannot take a target's lease (which kept the
#    target from being dialed for amonitor_dedupe_ttl) or break the
#    routes by its choice of msg_id.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $LEASE = 1;    # s

my $sdk = fake_sdk(target_id => 'k1', heartbeat_interval => 0,
    ack_delay => 3);
my $sport = $sdk->port;

# k2 listens only when the test says so
my $sdk2 = fake_sdk(target_id => 'k2', heartbeat_interval => 0);
my $sport2 = $sdk2->port;
$sdk2->stop;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-o: timeout=300ms
                   lease=${\ ($LEASE * 1000) }ms;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target k1 ws://127.0.0.1:$sport/;
    amonitor_target k2 ws://127.0.0.1:$sport2/;
    amonitor_ack_timeout 6s;
    amonitor_dedupe_ttl 1h;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    $t->ignore_log(qr/exited on signal 9|cluster bus|redis|k2/);
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B);

ok($sdk->wait_connections(1, 5), 'k1 is dialed');
my ($owner) = ($redis->cli('GET', 'amon-o:lease:k1') // '') =~ /^([AB]):/;
ok($owner, 'an instance holds k1');
$owner //= 'A';
my $other = $owner eq 'A' ? 'B' : 'A';

sub action {
    my ($id, $target) = @_;
    return { msg_id => $id, type => 'action', target_id => $target // 'k1',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub ask {
    my ($t, $id, $target) = @_;
    my $p = $t->panel('/ws/panel');
    $p->send_json(action($id, $target));
    return $p->answer_to($id, 5);
}

sub status {
    my ($t, $id) = @_;
    my $p = $t->panel('/ws/panel');
    $p->send_json({ msg_id => "q-$id", type => 'action_status',
        payload => { action_msg_id => $id } });
    my $m = $p->recv_until(sub { ($_[0]{json}{msg_id} // '') eq "q-$id" }, 5);
    return $m ? $m->{json} : undef;
}

# 1. the owner's own action, the owner killed while k1 runs it
my $id = uuid4();
{
    my $p = $I{$owner}->panel('/ws/panel', name => 'doomed');
    $p->send_json(action($id));
    ok(wait_for(sub { $sdk->executed($id) == 1 }, 5),
        'k1 runs an action asked on its owner');
    like($redis->cli('GET', "amon-o:$id") // '', qr/^p.*\|k1;h3600000$/,
        'its claim, naming the target');
    ok($redis->cli('PTTL', "amon-o:$id") > 3600 * 1000,
        'kept for the lease plus the dedupe TTL');
    my ($w) = $I{$owner}->worker_pids;
    ok($w && kill('KILL', $w), "the owner's worker ($w) is killed");
}
sleep_loop($LEASE + 0.5);
like($redis->cli('GET', "amon-o:$id") // '', qr/^p/,
    'past its lease the claim is still there');
my $left = $redis->cli('PTTL', "amon-o:$id");
ok($left > 0 && $left < 3600 * 1000, 'nobody renews it: it has less than '
    . "the dedupe TTL left ($left ms)");
ok(wait_for(sub { $sdk->connections >= 1 && $redis->cli('GET',
            'amon-o:lease:k1') }, 5), 'k1 is served again');

my $a = ask($I{$other}, $id);
ok($a && $a->{payload}{duplicate}, 'a retry through the other instance '
    . 'is a duplicate') or diag(explain($a));
is($a && $a->{payload}{state}, 'failed', 'state failed');
is($a && $a->{payload}{original}{code}, 'TARGET_DISCONNECTED',
    'TARGET_DISCONNECTED: its outcome is not known');
like($a && $a->{payload}{original}{message} // '', qr/may have run/,
    'the original says it may have run');
is($a && $a->{target_id}, 'k1', 'the answer names its target');
my $q = status($I{$other}, $id);
is($q && $q->{payload}{state}, 'failed', 'action_status: failed');
is($q && $q->{payload}{result}{code}, 'TARGET_DISCONNECTED',
    'with the same result');
$a = ask($I{$owner}, $id);
is($a && $a->{payload}{state}, 'failed',
    "the owner's new worker answers the same");
sleep_loop(0.5);
is($sdk->executed($id), 1, 'k1 ran it once');

# an action that ends normally leaves no marker
$sdk->set(ack_delay => 0.01);
my $ok = uuid4();
$a = ask($I{$other}, $ok);
is($a && $a->{type}, 'action_ack', 'an action acked');
ok(!$a->{payload}{duplicate}, 'first run');
ok(wait_for(sub { ($redis->cli('GET', "amon-o:$ok") // '') =~ /^d/ }, 3),
    'recorded done');
my $pttl = $redis->cli('PTTL', "amon-o:$ok");
ok($pttl > 3590 * 1000 && $pttl <= 3600 * 1000,
    "kept for the dedupe TTL ($pttl ms)");
my $unavail = uuid4();
$a = ask($I{$other}, $unavail, 'k2');
is($a && $a->{payload}{code}, 'TARGET_UNAVAILABLE', 'k2 is down: '
    . 'TARGET_UNAVAILABLE');
ok(wait_for(sub { $redis->cli('EXISTS', "amon-o:$unavail") eq '0' }, 3),
    'its claim is released: it was never sent');
$a = ask($I{$other}, $unavail, 'k1');
is($a && $a->{type}, 'action_ack', 'a retry runs');
ok($a && !$a->{payload}{duplicate}, 'as a new action');

# 2. msg_ids that name the module's keys
# While k2 is down the workers take its lease in turn, each for one failed
# dial; between two tries nobody holds it
ok(wait_for(sub { $redis->cli('EXISTS', 'amon-o:lease:k2') eq '0' }, 3),
    'nobody holds k2');
for my $name ('lease:k2', 'routes', 'seen', 'state', 'lost', 'id:x') {
    $a = ask($I{$other}, $name);
    is($a && $a->{type}, 'action_ack', "msg_id \"$name\" is an action")
        or diag(explain($a));
    ok($a && !$a->{payload}{duplicate}, 'run, not a duplicate');
    like($redis->cli('GET', "amon-o:id:$name") // '', qr/^d/,
        "recorded under \"id:$name\"");
}
is($redis->cli('TYPE', 'amon-o:routes'), 'hash', 'the routes are a hash');
is($redis->cli('TYPE', 'amon-o:seen'), 'zset', 'the served set is a zset');
is($redis->cli('GET', 'amon-o:state'), '1', 'the state key is unchanged');
is($redis->cli('EXISTS', 'amon-o:lost'), '0', 'no data loss is marked');
# free, or held by a worker for a dial (its token), never a claim ("p"/"d")
my $held = $redis->cli('GET', 'amon-o:lease:k2') // '';
ok($held eq '' || $held =~ /^[AB]:\d+:[0-9a-f]{8}/,
    "no claim took k2's lease (" . ($held eq '' ? 'free' : $held) . ')');
$a = ask($I{$other}, 'lease:k2');
is($a && $a->{payload}{state}, 'done', 'a repeat of "lease:k2" is a '
    . 'duplicate');

$sdk2->start;
ok($sdk2->wait_connections(1, 5), 'k2, started, is dialed at once');
like($redis->cli('GET', 'amon-o:lease:k2') // '', qr/^[AB]:/,
    "and k2's lease holds a worker's token");
$a = ask($I{$other}, uuid4(), 'k2');
is($a && $a->{type}, 'action_ack', 'k2 runs actions');

done_testing();
