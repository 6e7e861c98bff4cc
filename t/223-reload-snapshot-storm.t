# A reload in the middle of a reconnect storm: 300 panels finish their
# handshakes at once on a worker that serves 3,000 targets, and nginx is
# told to reload while the worker is still building their snapshots a
# pass at a time (some panels opened, others waiting for their pass).
# The old worker exits promptly: every storm connection is closed by it,
# each panel that got its 101 with a close frame of 1012; nothing is left
# waiting for a pass that never comes.  Panels that the old worker opens
# as it shuts down are closed at once, with no snapshot built for them
# (the new worker tells them all when they reconnect).  The new worker
# keeps the zone's records and serves a new panel all 3,000 of them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale dead_targets);
use Time::HiRes qw(time);

my ($N, $STORM) = (3000, 300);
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
location = /metrics { amonitor_metrics; }
EOC
)->run;

sub panels_open { $t->metric('amonitor_panels') }

# the target_status messages a new panel is told
sub records_told {
    my $p = $t->panel('/ws/panel');
    $p->ping(undef, tscale(30));
    my $n = grep { ref $_->{json} eq 'HASH'
        && ($_->{json}{type} // '') eq 'target_status' } $p->messages;
    $p->close(1000);
    return $n;
}

# every target's first dial has ended: each has its record
ok(wait_for(sub { records_told() == $N }, tscale(30)),
    "a panel is told all $N records before the storm");

my ($old) = $t->worker_pids;
my @s = storm_open($t->port(0), $STORM, '/ws/panel');

# some storm panels open, not all: then the reload
wait_for(sub {
    my $n = panels_open();
    return $n >= 10 || $n >= $STORM;
}, tscale(30));
my $opened = panels_open();
cmp_ok($opened, '<', $STORM, "the reload comes mid-storm ($opened open)");

my $t0 = time;
ok($t->reload, 'reload: a new worker runs');
ok(wait_for(sub { !kill(0, $old) }, tscale(20)), 'the old worker exits');
my $exit = time - $t0;
diag(sprintf('%d of %d storm panels open at the reload; old worker gone '
    . 'after %.2f s', $opened, $STORM, $exit));

# every storm connection closed by the server; a panel with its close
my ($closed, $upgraded, $told_1012, $snapshots) = (0, 0, 0, 0);
for my $c (@s) {
    my ($data, $eof) = storm_read($c, tscale(10));
    $closed++ if $eof;
    next unless $data =~ m{^HTTP/1\.1 101 };
    $upgraded++;
    $told_1012++ if $data =~ /\x88[\x02-\x7d]\x03\xf4/;
    $snapshots++ if $data =~ /"type":"target_status"/;
}
diag("$upgraded storm panels got their 101, $snapshots a snapshot");
is($closed, $STORM, 'every storm connection was closed by the old worker');
cmp_ok($upgraded, '>=', $opened, 'the panels opened got their 101');
is($told_1012, $upgraded, 'each with a close frame of 1012');
cmp_ok($snapshots, '>=', $opened, 'the panels opened before got snapshots');
cmp_ok($snapshots, '<', $upgraded,
    'the panels opened as the worker shut down got none: only the 1012');
close $_ for @s;

is(records_told(), $N, "the new worker tells a new panel all $N records");

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->ignore_log(qr/\[warn\].*(?:slow panel|dropped|send queue)/);
$t->stop;

done_testing;
