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
# wait as at the start.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::ActionEnds qw(ends_sdk every_end);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = ends_sdk(port => $t->port(1), target_id => 'ret-ok');
# takes the TCP connection and never answers the upgrade
my $mute = raw_sdk_listen($t->port(2));
# nothing listens there: the dial is refused
my $closed = free_port();

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_ping 0;
    amonitor_max_message_size 256k;
    amonitor_connection_buffer_limit 1m;
    amonitor_send_queue 16;
    amonitor_connect_timeout 30s;
    amonitor_ack_timeout 2s;
    amonitor_reconnect 200ms 1s;
    amonitor_target ret-ok ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target ret-mute ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target ret-closed ws://127.0.0.1:$closed/;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; amonitor_panel_snapshot off; }
EOC
)->run;

ok($sdk->wait_connections(1), 'the SDK is connected');

my %targets = (ok => 'ret-ok', mute => 'ret-mute', closed => 'ret-closed',
    nobody => 'ret-nobody');
# 1m holds 3 or 4 frames of 200 KB besides the one being reassembled
every_end(what => '200 KB actions', size => 200 * 1024, n => 8, min => 3,
    max => 4, panel => $t->panel('/ws/panel'), sdk => $sdk, %targets);
# amonitor_send_queue 16: 16 in flight
every_end(what => 'small actions', size => 100, n => 20, min => 16,
    max => 16, panel => $t->panel('/ws/panel'), sdk => $sdk, %targets);

$t->ignore_log(qr/\[error\].*(?:timed out|handshake|refused|reset|closed)/);
$t->stop;

done_testing;
