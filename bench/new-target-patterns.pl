#!/usr/bin/env perl
# What a target seen for the first time costs when many panels subscribe
# by pattern.  P panels (default 1000) each subscribe to the same G
# patterns (default 256, none matching the new targets); then K targets
# (default 20) are dialed on demand one after the other (an action with
# payload.target_url to a fake SDK of that id), and the time from the
# action to its ack is taken: it includes matching the new target against
# the worker's patterns; so does the worker's CPU time over the K dials.
# The patterns ("*g-1-*", ...) are searched for in the whole id.  SHARED=0 gives every panel patterns of its own
# (as many as the worker keeps: P x G at most 10,000 different ones).
#
# Usage: perl bench/new-target-patterns.pl [P] [G] [K]
# Knobs: SHARED (1), TEST_AMON_MODULE (this tree's module).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(proc_cpu_ms);
use Time::HiRes qw(time);
use List::Util qw(sum);

my ($P, $G, $K) = (@ARGV, 1000, 256, 20)[0 .. 2];
my $shared = $ENV{SHARED} // 1;

my $t = Test::AMonitor->new(workers => 1, log_level => 'warn',
    worker_connections => $P + 200);
my @sdks = map {
    fake_sdk(port => $t->port($_), target_id => "new-$_",
        heartbeat_interval => 0)
} 1 .. $K;

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 16m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_dial_limit 1000;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my @panels;
for my $i (1 .. $P) {
    my $tag = $shared ? 'g' : "g$i";
    push @panels, $t->panel('/ws/panel?targets='
        . join(',', map {"*$tag-$_-*"} 1 .. $G), name => "p$i");
}
$_->ping for @panels;

my @ms;
my ($pid) = $t->worker_pids;

sub cpu_ms { proc_cpu_ms($pid) }

my $cpu0 = cpu_ms();

for my $sdk (@sdks) {
    # a panel dials at most amonitor_dial_limit_per_panel targets
    my $q = $t->panel('/ws/panel?targets=', name => 'dialer');
    $q->ping;
    my $id = uuid4();
    my $t0 = time;
    $q->send_json({ msg_id => $id, type => 'action', timestamp => now_ms(),
        target_id => $sdk->target_id,
        payload => { action => 'restart', target_url => $sdk->url } });
    my $a = $q->answer_to($id, 30);
    die "no ack for " . $sdk->target_id . ": "
        . ($a ? join("", Test::More::explain($a)) : "no answer") . "\n"
        unless $a && $a->{type} eq 'action_ack';
    push @ms, (time - $t0) * 1000;
}

my $cpu = cpu_ms() - $cpu0;
my @s = sort { $a <=> $b } @ms;
printf "panels %d, patterns %d each (%s), new targets %d: "
    . "action to ack median %.2f ms, min %.2f, max %.2f; "
    . "worker CPU %.1f ms per new target\n",
    $P, $G, $shared ? 'the same' : 'different', $K,
    $s[ int(@s / 2) ], $s[0], $s[-1], $cpu / $K;

$t->stop;
$_->stop for @sdks;
