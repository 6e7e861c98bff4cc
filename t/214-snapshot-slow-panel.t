# A new panel whose send queue fills during its snapshot: what does not
# fit is dropped for it and counted in "dropped" with the slow panel's
# warn line, as live heartbeats and events are (the snapshot used to stop
# there without a word: 125 of 400 target_status told, "dropped" 0).
# Every target is either told or counted.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(dead_targets);
use Test::AMonitor::Raw;

my $N = 400;
my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);

# every target dials a port nobody listens on
my $targets = dead_targets('snap-', $N);

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 4m;
    amonitor_send_queue 16;
    amonitor_reconnect 10s 60s;
$targets
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
    # a small send buffer on nginx's side, so that what the panel does
    # not read piles up in the module's queue rather than in the kernel
    server {
        listen 127.0.0.1:%%PORT_2%% sndbuf=16k;
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

sub dropped {
    my $st = try_decode_json($t->http_get('/status')->{body}) // {};
    return $st->{dropped} // $st->{counters}{dropped};
}

my $before = dropped() // 0;

# a panel that reads nothing while its snapshot is made
my $s = slow_panel($t->port(2), '/ws/panel');
ok($s, 'the slow panel is connected');
sleep 1;

my $told = 0;
while (my $f = raw_read_frame($s, 2)) {
    last if $f->{eof};
    $told++ if ($f->{payload} // '') =~ /"type":"target_status"/;
}

my $dropped = (dropped() // 0) - $before;
cmp_ok($told, '<', $N, "the queue held $told of them");
is($told + $dropped, $N, "the rest ($dropped) are counted in dropped");
ok($t->wait_error_log(qr/panel #\d+ is slow: its send queue is full/, 5),
    'with the slow panel warn line');

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->ignore_log(qr/\[warn\].*is slow: its send queue is full/);
$t->stop;

done_testing;
