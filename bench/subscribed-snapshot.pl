#!/usr/bin/env perl
# What a subscribed panel's snapshot costs on a worker that serves many
# targets.  One worker, N configured targets (default 10000) at a port
# nobody listens on, so every one has a record ("down") in the zone; then
# P panels (default 1000) open one after the other, each subscribed to K
# of the targets by id (default 10; with GLOBS=1 by K patterns that each
# match one target instead).  Printed: the worker's CPU time per panel
# opened (its snapshot included), and how many target_status frames the
# panels were told (P x K expected).
#
# Usage: perl bench/subscribed-snapshot.pl [N] [P] [K]
# Knobs: GLOBS (0), TEST_AMON_MODULE (this tree's module).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(dead_targets);
use Test::AMonitor::Process qw(proc_cpu_ms);
use Time::HiRes qw(time);

my ($N, $P, $K) = (@ARGV, 10000, 1000, 10)[0 .. 2];
my $globs = $ENV{GLOBS} // 0;

my $t = Test::AMonitor->new(workers => 1, log_level => 'warn',
    panel_snapshot => 1, worker_connections => $P + $N + 200);

# every target dials a port nobody listens on
my $targets = dead_targets('sub-', $N);

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 64m;
    amonitor_reconnect 1h 1h;
    amonitor_ping 0;
$targets
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

# every target's first dial has ended: a panel is told all N records
my $end = time + 60;
my $records = 0;
while ($records < $N && time < $end) {
    my $all = $t->panel('/ws/panel');
    $all->ping(undef, 30);
    $records = grep { ref $_->{json} eq 'HASH'
        && ($_->{json}{type} // '') eq 'target_status' } $all->messages;
    $all->close;
    Time::HiRes::sleep(0.5) if $records < $N;
}
die "only $records of $N records\n" if $records < $N;

my ($pid) = $t->worker_pids;

sub cpu_ms { proc_cpu_ms($pid) }

my $cpu0 = cpu_ms();
my $t0 = time;
my @panels;
for my $i (1 .. $P) {
    my @ids = map { sprintf 'sub-%05d', 1 + ($i * 7919 + $_ * 104729) % $N }
        1 .. $K;
    my $list = join ',', map { $globs ? "$_*" : $_ } @ids;
    my $p = $t->panel("/ws/panel?targets=$list", name => "p$i");
    $p->ping;
    push @panels, $p;
}
my $secs = time - $t0;
my $cpu = cpu_ms() - $cpu0;

my $told = 0;
for my $p (@panels) {
    $told += grep { ref $_->{json} eq 'HASH'
        && ($_->{json}{type} // '') eq 'target_status' } $p->messages;
}

printf "targets %d, panels %d of %d %s each: worker CPU %.3f ms per panel "
    . "opened (%.0f ms in all, %.1f s); target_status told %d of %d\n",
    $N, $P, $K, $globs ? 'patterns' : 'ids', $cpu / $P, $cpu, $secs,
    $told, $P * $K;

$_->close for @panels;
$t->stop;
