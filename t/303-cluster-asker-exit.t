# amonitor_cluster: the worker that asked goes before the ack.  A panel
# on instance A acts on a target held by instance B; the SDK takes the
# action and acks it late; meanwhile A is reloaded, so the worker that
# claimed the msg_id exits before the ack comes back to it.  The claim
# must not be left to expire: the action may have run (it did), so a
# retry with the same msg_id after the claim's lease is answered
# "duplicate ignored" (state failed: the outcome never reached the
# worker that asked) and does not run again.  Before, the claim was left
# open and a retry after the lease ran the action a second time.

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

my $ACK_DELAY = 1.5;
my $LEASE     = 1;      # the claims' lease (amonitor_redis lease=), s

my $sdk = fake_sdk(target_id => 'x1', heartbeat_interval => 0,
    ack_delay => $ACK_DELAY);
my $sport = $sdk->port;

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-x: timeout=300ms
                   lease=${\ ($LEASE * 1000) }ms;
    amonitor_cluster on lease=1s;
    amonitor_instance_id $name;
    amonitor_target x1 ws://127.0.0.1:$sport/;
    amonitor_ack_timeout 10s;
    amonitor_reconnect 50ms 300ms;
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

my %I = map { $_ => agent($_) } qw(A B);

ok($sdk->wait_connections(1, 5), 'x1 is dialed');
my ($owner) = $redis->cli('GET', 'amon-x:lease:x1') =~ /^([AB]):/;
ok($owner, "instance $owner holds x1");
my $asker = $owner eq 'A' ? 'B' : 'A';
my $t = $I{$asker};

sub action {
    my ($id) = @_;
    return { msg_id => $id, type => 'action', target_id => 'x1',
        timestamp => now_ms(), payload => { action => 'restart' } };
}

sub final_for {
    my ($p, $id, $timeout) = @_;
    return $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ref $j->{payload} eq 'HASH'
            && ($j->{payload}{action_msg_id} // '') eq $id
            && $j->{payload}{final};
    }, $timeout);
}

# the same, through a live asker: the ack comes back (the path works)
my $p = $t->panel('/ws/panel', name => 'first');
my $ok_id = uuid4();
$p->send_json(action($ok_id));
my $m = final_for($p, $ok_id, $ACK_DELAY + 5);
is($m && $m->{json}{type}, 'action_ack', "through $asker: acked by x1");
is($sdk->executed($ok_id), 1, 'it ran once');

# now the asker is reloaded while x1 holds the ack back
my $id = uuid4();
$p->send_json(action($id));
ok(wait_for(sub { $sdk->executed($id) == 1 }, 5),
    'the action reached x1, which acks it late');
$t->mark_log;
ok($t->reload, "instance $asker reloads: the worker that asked exits");
ok($p->wait_closed(5), 'its panel is closed');
is($p->close_code, 1012, 'with 1012');
ok(wait_for(sub { $t->child_pids == 1 }, 5), 'the old worker is gone')
    or diag("children: @{[ $t->child_pids ]}");
cmp_ok($sdk->executed($id), '==', 1, 'before the ack reached anyone');

# past the ack and the claim's lease, the same msg_id again
sleep_loop($ACK_DELAY + $LEASE + tscale(1));
my $p2 = $t->panel('/ws/panel', name => 'retry');
$p2->send_json(action($id));
$m = final_for($p2, $id, 5);
ok($m, 'the retry is answered');
my $pl = $m ? $m->{json}{payload} : {};
is($m && $m->{json}{type}, 'action_ack', 'with an ack');
ok($pl->{duplicate}, 'a duplicate') or diag(explain($pl));
is($pl->{state}, 'failed', 'state failed: the outcome is unknown');
like($pl->{original}{message} // '', qr/exited before its ack/,
    'the original says why');
sleep_loop(0.5);
is($sdk->executed($id), 1, 'x1 ran it once, not again');

my $log = $t->read_error_log;
unlike($log, qr/claims of this worker may be left open/,
    'no claim left open by the worker that exited');

done_testing();
