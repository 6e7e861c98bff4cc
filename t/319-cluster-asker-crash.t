# amonitor_cluster: the worker that asked dies (kill -9) while the owner
# of the target, on another instance, runs its action.  The owner holds
# the claim too from the moment it writes the action to its SDK: it
# renews it while the action lives and records the SDK's ack.  So a retry
# of that msg_id while the SDK works is a pending duplicate, and after the
# ack it is a duplicate with the ack's result ("done"); the SDK runs it
# once.  Before, nobody renewed or ended the claim once the asker was
# gone: it expired with its lease and a retry ran the action again.
#
# The same for an action whose SDK never acks: the owner records
# ACK_TIMEOUT ("failed") when its own wait ends, where before the claim
# expired and a retry ran it a second time.  And for an action that waits
# at the owner for its connection to the SDK: the owner holds the claim
# from the moment the action reaches it.

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

my $ACK_DELAY = 3;
my $LEASE     = 1;    # the claims' lease (amonitor_redis lease=), s

# a long id (253 bytes): the claim's value names it, and the owner holds
# that value too
my $K = 'k1-' . ('t' x 250);

my $sdk = fake_sdk(target_id => $K, heartbeat_interval => 0,
    ack_delay => $ACK_DELAY);
my $sport = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-k: timeout=300ms
                   lease=${\ ($LEASE * 1000) }ms;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target $K ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 6s;
    amonitor_ack_late_window 0;
    amonitor_connect_timeout 20s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    $t->ignore_log(qr/exited on signal 9|cluster bus|redis/);
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B);

ok($sdk->wait_connections(1, 5), 'k1 is dialed');
my ($owner) = ($redis->cli('GET', "amon-k:lease:$K") // '') =~ /^([AB]):/;
ok($owner, 'an instance holds k1');
$owner //= 'A';
my $asker = $owner eq 'A' ? 'B' : 'A';
my $t = $I{$asker};
like($redis->cli('GET', "amon-k:lease:$K") // '', qr/;c$/,
    "the owner's token says it takes the claim with the action");

sub action {
    my ($id) = @_;
    return { msg_id => $id, type => 'action', target_id => $K,
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub key { "amon-k:$_[0]" }

# the asker's worker killed while k1 holds the ack back
sub crash_asker {
    my ($id) = @_;
    my $p = $t->panel('/ws/panel', name => 'doomed');
    $p->send_json(action($id));
    ok(wait_for(sub { $sdk->executed($id) == 1 }, 5),
        'the action reached k1 through the other instance');
    like($redis->cli('GET', key($id)) // '', qr/^p/, 'its claim is pending');
    my ($w) = $t->worker_pids;
    ok($w && kill('KILL', $w), "the asking worker ($w) is killed");
    ok(wait_for(sub { my @w = $t->worker_pids; @w == 1 && $w[0] != $w }, 5),
        'the master starts another');
}

sub retry {
    my ($id) = @_;
    my $p = $t->panel('/ws/panel', name => 'retry');
    $p->send_json(action($id));
    return $p->answer_to($id, 3);
}

# 1. acked: the owner records the ack
my $id = uuid4();
crash_asker($id);

# past the lease, before the ack: the owner renewed the claim
sleep_loop($LEASE + 0.5);
like($redis->cli('GET', key($id)) // '', qr/^p/,
    'the claim is still pending past its lease: the owner renews it');
my $a = retry($id);
ok($a && $a->{payload}{duplicate}, 'a retry while k1 works is a duplicate')
    or diag(explain($a));
is($a && $a->{payload}{state}, 'pending', 'state pending');

# the ack, then more than a lease: recorded by the owner
ok(wait_for(sub { ($redis->cli('GET', key($id)) // '') =~ /^d/ },
    $ACK_DELAY + 2), 'the owner records the ack in redis');
sleep_loop($LEASE + 0.5);
$a = retry($id);
ok($a && $a->{payload}{duplicate}, 'a retry after the ack is a duplicate')
    or diag(explain($a));
is($a && $a->{payload}{state}, 'done', 'state done: the ack was recorded');
is($a && $a->{payload}{original}{success}, JSON::PP::true(),
    "the original is k1's ack");
sleep_loop(0.3);
is($sdk->executed($id), 1, 'k1 ran it once');

# 2. never acked: the owner records ACK_TIMEOUT
$sdk->set(ack_delay => 60);
$id = uuid4();
crash_asker($id);
sleep_loop($LEASE + 0.5);
$a = retry($id);
ok($a && $a->{payload}{duplicate}, 'a retry while k1 is silent is pending')
    or diag(explain($a));
ok(wait_for(sub { ($redis->cli('GET', key($id)) // '') =~ /^f/ }, 9),
    'after its ack timeout the owner records the action as failed');
$a = retry($id);
is($a && $a->{payload}{state}, 'failed', 'a retry then: state failed');
like($a && $a->{payload}{original}{message} // '', qr/no ack/,
    'the original says why');
is($sdk->executed($id), 1, 'k1 got it once');
$sdk->set(ack_delay => 0.05);

# 3. the usual path still ends once: asker alive, the ack reaches it
$id = uuid4();
my $p = $t->panel('/ws/panel', name => 'alive');
$p->send_json(action($id));
$a = $p->answer_to($id, 5);
is($a && $a->{type}, 'action_ack', 'a live asker gets its ack');
ok(wait_for(sub { ($redis->cli('GET', key($id)) // '') =~ /^d/ }, 2),
    'recorded once as done');

# 4. the asking worker killed while the action waits at the owner for its
# connection (the SDK's connection was lost and the new one hangs): the
# owner renews the claim while it waits too, then writes the action once
# the connection opens; a retry meanwhile is a pending duplicate
$sdk->pause_accept;
$sdk->drop_all;
my $lease;
ok(wait_for(sub {
        $lease = $redis->cli('GET', "amon-k:lease:$K") // '';
        $lease =~ /^[AB]:/ && $sdk->connections == 0;
    }, 5), 'the lease is taken again, the new connection hangs')
    or diag("lease: $lease");
($owner) = $lease =~ /^([AB]):/;
$owner //= 'A';
$asker = $owner eq 'A' ? 'B' : 'A';
$t = $I{$asker};
sleep_loop(0.3);
$id = uuid4();
{
    my $p = $t->panel('/ws/panel', name => 'doomed-waiting');
    $p->send_json(action($id));
    ok(wait_for(sub { ($redis->cli('GET', key($id)) // '') =~ /^p/ }, 3),
        'the action is claimed');
    sleep_loop(0.3);
    my ($w) = $t->worker_pids;
    ok($w && kill('KILL', $w), "the asking worker ($w) is killed");
    ok(wait_for(sub { my @w = $t->worker_pids; @w == 1 && $w[0] != $w }, 5),
        'the master starts another');
}
sleep_loop($LEASE + 0.3);
like($redis->cli('GET', key($id)) // '', qr/^p/,
    'past the lease the claim is pending: the owner renews it as it waits');
$a = retry($id);
is($a && $a->{payload}{state}, 'pending', 'a retry is a pending duplicate')
    or diag(explain($a));
$sdk->resume_accept;
ok(wait_for(sub { ($redis->cli('GET', key($id)) // '') =~ /^d/ }, 5),
    'once connected the owner writes it and records the ack');
sleep_loop(0.5);
is($sdk->executed($id), 1, 'k1 ran it once');

my $log = $I{$owner}->read_error_log . $t->read_error_log;
unlike($log, qr/may have run twice|may run twice|was ended already/,
    'no claim taken twice, and both writers wrote the same record');

done_testing();
