# Every way an action can end gives back what it counts against its
# panel: the bytes of its frame (amonitor_connection_buffer_limit,
# t/219) and its place among the panel's actions in flight
# (amonitor_send_queue).  An end that forgot either would make the count
# creep up until a long-lived panel had every action refused.  Twice,
# once with actions of 200 KB (the bytes bound first) and once with
# small ones (the count bound first), one panel measures how many
# actions may wait at once for a target whose handshake never ends,
# ends actions in each way there is (acked, acked success=false, ack
# timeout, the SDK's connection lost, a duplicate msg_id, an unknown
# target, a target that refuses the connection, an invalid action,
# refused for the rate), then measures again: as many must be able to
# wait as at the start.  All of it with the shared-memory zone as the
# store, then with Redis (where an action also waits for its claim's
# round trip).  The plays are in Test::AMonitor::ActionEnds; t/337 plays
# them across a cluster.

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

my %store = (
    zone  => '',
    redis => "    amonitor_redis 127.0.0.1:$rport prefix=amon-ret: "
        . "timeout=500ms;\n",
);

for my $name (qw(zone redis)) {
    my $t = Test::AMonitor->new(workers => 1);
    my $sdk = ends_sdk(port => $t->port(1), target_id => 'ret-ok');
    # takes the TCP connection and never answers the upgrade
    my $mute = raw_sdk_listen($t->port(2));
    # nothing listens there: the dial is refused
    my $closed = free_port();

    $t->write_config(
        http_config => "    amonitor_zone amon 1m;\n" . $store{$name}
            . ends_conf(ok => ['ret-ok', 'ws://127.0.0.1:%%PORT_1%%/'],
                mute => ['ret-mute', 'ws://127.0.0.1:%%PORT_2%%/'],
                closed => ['ret-closed', "ws://127.0.0.1:$closed/"]),
        config => 'location = /ws/panel { amonitor_panel on; '
            . 'amonitor_panel_snapshot off; }',
    )->run;

    ok($sdk->wait_connections(1), "$name: the SDK is connected");

    both_ends(label => $name, panel => sub { $t->panel('/ws/panel') },
        sdk => $sdk, ok => 'ret-ok', mute => 'ret-mute',
        closed => 'ret-closed', nobody => 'ret-nobody');

    $t->ignore_log(
        qr/\[error\].*(?:timed out|handshake|refused|reset|closed)/);
    $t->stop;
    $sdk->stop;
    close $mute;
}

ok($redis->cli('DBSIZE') > 0, 'the claims of the second run were in Redis');
$redis->stop;

done_testing;
