# t/226's ends with Redis as the store (amonitor_redis, no cluster): an
# action waits for its claim's round trip to Redis before its frame is
# queued, and every way it ends still gives back what it counted against
# its panel (its frame's bytes, its place among the panel's actions in
# flight).  The plays are in Test::AMonitor::ActionEnds.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;
use Test::AMonitor::ActionEnds qw(ends_sdk every_end);

ok(-x $Test::AMonitor::Redis::SERVER, 'redis-server is installed')
    or BAIL_OUT('no redis-server');

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server runs on ' . $redis->addr);
my $rport = $redis->port;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = ends_sdk(port => $t->port(1), target_id => 'rr-ok');
# takes the TCP connection and never answers the upgrade
my $mute = raw_sdk_listen($t->port(2));
# nothing listens there: the dial is refused
my $closed = free_port();

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_redis 127.0.0.1:$rport prefix=amon-rr: timeout=500ms;
    amonitor_ping 0;
    amonitor_max_message_size 256k;
    amonitor_connection_buffer_limit 1m;
    amonitor_send_queue 16;
    amonitor_connect_timeout 30s;
    amonitor_ack_timeout 2s;
    amonitor_reconnect 200ms 1s;
    amonitor_target rr-ok ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target rr-mute ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target rr-closed ws://127.0.0.1:$closed/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the SDK is connected');

my %targets = (ok => 'rr-ok', mute => 'rr-mute', closed => 'rr-closed',
    nobody => 'rr-nobody');
every_end(what => '200 KB actions', size => 200 * 1024, n => 8, min => 3,
    max => 4, panel => $t->panel('/ws/panel'), sdk => $sdk, %targets);
every_end(what => 'small actions', size => 100, n => 20, min => 16,
    max => 16, panel => $t->panel('/ws/panel'), sdk => $sdk, %targets);

ok($redis->cli('DBSIZE') > 0, 'the claims were kept in Redis');

$t->ignore_log(qr/\[error\].*(?:timed out|handshake|refused|reset|closed)/);
$t->stop;
$redis->stop;

done_testing;
