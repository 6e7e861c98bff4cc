# A reconnect storm: 200 panels finish their handshakes at once on a
# worker that serves 3,000 targets.  Each new panel's snapshot walks
# every target record; a pass of the event loop builds them up to a
# budget and opens the other panels in the next passes, so a panel
# already open is answered meanwhile.  Before, every snapshot of the
# storm was built in one pass: the open panel's ping waited for all of
# them.  Checked relatively (the worst ping against the whole storm), not
# against a fixed time: every storm panel still gets its snapshot.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale dead_targets);
use Time::HiRes qw(time);

my ($N, $STORM) = (3000, 200);
my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);

# every target dials a port nobody listens on
my $targets = dead_targets('storm-', $N);

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 16m;
    amonitor_reconnect 30s 60s;
    amonitor_ping 0;
$targets
EOC
    config => <<'EOC',
location = /ws/panel { amonitor_panel on; }
location = /ws/quiet { amonitor_panel on; amonitor_panel_snapshot off; }
location = /metrics { amonitor_metrics; }
EOC
)->run;

sub panels_open { $t->metric('amonitor_panels') }

my $quiet = $t->panel('/ws/quiet?targets=');
ok($quiet->ping(undef, tscale(5)), 'the open panel is answered');
is(panels_open(), 1, 'one panel open');

# the storm's connections first (nginx accepts one per pass), then all
# the handshakes at once
my @s = storm_open($t->port(0), $STORM, '/ws/panel');
my $t0 = time;

# pings from the open panel while the storm is opened; the storm
# sockets are read between pings without blocking, so the loop's pace
# is the ping's (a /metrics request per pass made the pace that of a
# 3,000-target page, and a slow machine saw the storm end within two)
my %buf;
$_->blocking(0) for @s;
my $snapshots = sub {
    my $got = 0;
    for my $c (@s) {
        my $chunk = '';
        $buf{$c} .= $chunk while sysread($c, $chunk, 65536);
        my $data = $buf{$c} // '';
        $got++ if $data =~ m{^HTTP/1\.1 101 }
            && $data =~ /"type":"target_status"/;
    }
    return $got;
};
my ($worst, $pings, $got) = (0, 0, 0);
my $end = time + tscale(60);
while (time < $end) {
    my $p0 = time;
    ok($quiet->ping(undef, tscale(30)), 'ping answered') or last
        if $pings == 0;
    $quiet->ping(undef, tscale(30)) if $pings > 0;
    my $rtt = time - $p0;
    $worst = $rtt if $rtt > $worst;
    $pings++;
    last if ($got = $snapshots->()) == $STORM;
}
my $storm = time - $t0;
is($got, $STORM, 'every storm panel got the 101 and its snapshot');
is(panels_open(), $STORM + 1, "all $STORM storm panels open");
diag(sprintf('storm %.3f s, %d pings, worst %.3f s', $storm, $pings,
    $worst));
cmp_ok($pings, '>=', 3, 'the open panel pinged several times meanwhile');
cmp_ok($worst, '<', $storm / 3,
    'no ping waited for a large part of the storm');

close $_ for @s;
ok($quiet->ping(undef, tscale(5)), 'the open panel is still answered');
$quiet->close(1000);

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->ignore_log(qr/\[warn\].*(?:slow panel|dropped|send queue)/);
$t->stop;

done_testing;
