# amonitor_cluster: instances whose amonitor_target lines differ (one id at
# two URLs, or one URL under two ids) were accepted in silence, and an
# action could reach another SDK than the instance's status named.  Each
# worker now says so once per target, at warn.

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

my $s1 = fake_sdk(target_id => 'd1', heartbeat_interval => 0);
my $s2 = fake_sdk(target_id => 'd2', heartbeat_interval => 0);
my ($p1, $p2) = ($s1->port, $s2->port);

sub agent {
    my ($name, $targets) = @_;
    my $t = Test::AMonitor->new(workers => 1, log_level => 'info');
    $t->write_config(http_config => <<"EOC",
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-d: timeout=500ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
$targets
EOC
        config => 'location = /ws/panel { amonitor_panel on; }')->run;
    return $t;
}

my $A = agent('A', "    amonitor_target d1 ws://127.0.0.1:$p1/;\n"
    . "    amonitor_target d2 ws://127.0.0.1:$p2/;");
# B: d1 at d2's URL
my $B = agent('B', "    amonitor_target d1 ws://127.0.0.1:$p2/;");
$_->ignore_log(qr/another instance of the cluster has/) for $A, $B;

# B: d1 is at A's d1 URL there, and its URL is A's d2 (whichever comes
# first is said); A: its d1 is at another URL at B
ok($B->wait_error_log(qr/\[warn\].*target "d1" at ws:\/\/127\.0\.0\.1:$p2\/ here, but another instance of the cluster has "d[12]" at ws:\/\/127\.0\.0\.1:(?:$p1|$p2)\/: give every instance the same amonitor_target lines/, 10),
    'B says its d1 differs from A\'s lines');
ok($A->wait_error_log(qr/\[warn\].*target "d1" at ws:\/\/127\.0\.0\.1:$p1\/ here, but another instance of the cluster has "d1" at ws:\/\/127\.0\.0\.1:$p2\//, 10),
    'A says B has d1 at another URL');
sleep_loop(2);
is($B->log_count(qr/another instance of the cluster has/), 1,
    'said once, not at every resync');

$_->stop for $A, $B;
$_->stop for $s1, $s2;
$redis->stop;
done_testing;
