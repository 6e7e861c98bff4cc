# amonitor_cluster: every way an action run by another instance can end
# gives back what it counted against the asking panel.  An action handed
# to the target's owner stays counted for its panel (its frame's bytes,
# its place among the panel's actions in flight) until it ends: the
# owner's ack or error over the bus, the asker's ack timeout.  The panel
# is on instance B, every target is held by instance A; t/226 plays the
# same ends on one instance.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::ActionEnds qw(ends_sdk ends_conf both_ends);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $sdk = ends_sdk(target_id => 'ce-ok');
my $sport = $sdk->port;
# takes the TCP connection and never answers the upgrade
my $mport = free_port();
my $mute = raw_sdk_listen($mport);
# nothing listens there: the dial is refused
my $closed = free_port();

sub agent {
    my ($name) = @_;
    my $t = Test::AMonitor->new(workers => 1);
    my $ends = ends_conf(ok => ['ce-ok', "ws://127.0.0.1:$sport/"],
        mute => ['ce-mute', "ws://127.0.0.1:$mport/"],
        closed => ['ce-closed', "ws://127.0.0.1:$closed/"]);
    $t->write_config(http_config => <<"EOC" . $ends,
    amonitor_zone amonitor 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-ce: timeout=500ms;
    amonitor_cluster on lease=1500ms;
    amonitor_instance_id $name;
EOC
        config => 'location = /ws/panel { amonitor_panel on; '
            . 'amonitor_panel_snapshot off; }')->run;
    return $t;
}

# A first: it takes the leases of the targets it reaches
my $A = agent('A');
ok($sdk->wait_connections(1, tscale(5)), 'A dialed the SDK');
for my $id (qw(ce-ok ce-mute)) {
    ok(wait_for(sub { ($redis->cli('GET', "amon-ce:lease:$id") // '')
        =~ /^A:/ }, tscale(5)), "A holds the lease of $id");
}
my $B = agent('B');
sleep_loop(0.5);
is($sdk->accepted, 1, 'B did not dial the SDK: it hands its actions to A');

both_ends(panel => sub { $B->panel('/ws/panel') }, sdk => $sdk,
    ok => 'ce-ok', mute => 'ce-mute', closed => 'ce-closed',
    nobody => 'ce-nobody');

is($sdk->accepted, 3, 'only A dialed the SDK (again after each drop)');

for my $t ($B, $A) {
    $t->ignore_log(
        qr/\[error\].*(?:timed out|handshake|refused|reset|closed)/);
    $t->stop;
}
$redis->stop;

done_testing;
