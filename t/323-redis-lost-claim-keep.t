# Redis store: a lost claim (its worker killed while the SDK runs the
# action) is kept at least while its action may still be answered
# (amonitor_ack_timeout + amonitor_ack_late_window), as the zone keeps a
# claim, even with a shorter amonitor_dedupe_ttl: a repeat after the
# lease and the TTL is still answered "failed" and does not run the
# action a second time while its first run goes on (before, the claim
# lived lease + TTL: here 2 s, and the repeat at 3 s ran it again).
# And an action sent by target_url alone: the lost claim's answer names
# the target the first attempt went to, as a finished record does (it
# named none, or the repeat's own target).

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

my $sdk = fake_sdk(target_id => 'lk', heartbeat_interval => 0,
    ack_delay => 6);
my $url = 'ws://127.0.0.1:' . $sdk->port . '/';

my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
$t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=lk: lease=1s timeout=300ms;
    amonitor_target lk $url;
    amonitor_dedupe_ttl 1s;
    amonitor_ack_timeout 8s;
    amonitor_ack_late_window 0;
    amonitor_reconnect 50ms 200ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }')->run;
$t->ignore_log(qr/exited on signal 9/);
ok($sdk->wait_connections(1, 5), 'lk is dialed');

sub action {
    my ($id, %to) = @_;
    my $url = delete $to{target_url};
    return { msg_id => $id, type => 'action', timestamp => now_ms(),
        payload => { action => 'restart',
            ($url ? (target_url => $url) : ()) }, %to };
}

sub killed_while_running {
    my ($id, %to) = @_;
    my $p = $t->panel('/ws/panel');
    $p->send_json(action($id, %to));
    ok(wait_for(sub { $sdk->executed($id) == 1 }, 5), 'the SDK runs it')
        or diag(explain([$p->messages]));
    my ($w) = $t->worker_pids;
    ok($w && kill('KILL', $w), "the worker ($w) is killed");
    ok(wait_for(sub { my @w = $t->worker_pids; @w == 1 && $w[0] != $w
                && $sdk->connections >= 1 }, 5), 'a new worker is connected');
}

my $id = uuid4();
killed_while_running($id, target_id => 'lk');
like($redis->cli('GET', "lk:$id") // '', qr/\|lk;h8000$/,
    'the claim names 8000 ms: the ack timeout, longer than the TTL');

# past the lease and the dedupe TTL, while the first run still goes on
sleep_loop(2.5);
my $p = $t->panel('/ws/panel');
$p->send_json(action($id, target_id => 'lk'));
my $a = $p->answer_to($id, 5);
ok($a && $a->{payload}{duplicate}, 'a repeat at 3 s is a duplicate')
    or diag(explain($a));
is($a && $a->{payload}{state}, 'failed', 'state failed');
is($a && $a->{payload}{original}{code}, 'TARGET_DISCONNECTED',
    'TARGET_DISCONNECTED');
sleep_loop(0.3);
is($sdk->executed($id), 1, 'the SDK ran it once');

# by target_url alone
my $uid = uuid4();
killed_while_running($uid, target_url => $url);
like($redis->cli('GET', "lk:$uid") // '', qr/\|\Q$url\E;h8000$/,
    'the claim names the URL');
sleep_loop(1.5);
$p = $t->panel('/ws/panel');
$p->send_json(action($uid, target_id => 'lk'));
$a = $p->answer_to($uid, 5);
is($a && $a->{payload}{state}, 'failed', 'a repeat is a failed duplicate')
    or diag(explain($a));
is($a && $a->{target_id}, $url,
    'the answer names what the first attempt named, not the repeat\'s id');
is($sdk->executed($uid), 1, 'once');

done_testing();
