# A short soak (bench/soak/soak.py): two workers, six fake SDKs and six
# long-lived panels under a mixed load for 20 s, while nginx reloads every
# 6 s, an SDK goes down every 4 s, SDKs dialed on demand come and go
# every 2 s, and short-lived panels (clean, reset, half handshakes, broken
# frames, invalid messages, subscribe, stalled) come and go; some panels
# of both kinds over wss:// (--tls).  The soak's own checks must pass: no msg_id run twice,
# every action answered and done or failed, no SDK message lost beyond
# what the agent counted as dropped, event bytes intact, subscription
# filters kept, only 1000/1012 closes, no panel connection left in a
# worker, a clean stop and no alert or sanitizer report in the log.  The
# report must also show that the schedule really happened (reloads, SDK
# restarts, retries after TARGET_UNAVAILABLE, duplicates answered
# "done", targets dialed on demand and all of them forgotten at the end).  Then the checker's self-test: an SDK that skips a sequence
# number, or reports an msg_id run twice, must make it fail.  A second
# run does the same with three instances in a cluster (amonitor_cluster,
# a redis-server of its own), reloaded in turn every 4 s.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Util qw(tscale);

my $ROOT   = $Test::AMonitor::REPO;
my $PYTHON = '/usr/bin/python3';
my $SOAK   = "$ROOT/bench/soak/soak.py";
my $NGINX  = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my $MODULE = $ENV{TEST_AMON_MODULE}
    // "$ROOT/build/nginx/ngx_http_amonitor_module.so";

ok(-x $PYTHON && -e $SOAK && -e $MODULE, 'python3, soak.py and the module')
    or BAIL_OUT("missing $PYTHON, $SOAK or $MODULE");

sub soak {
    my (@args) = @_;
    my $cmd = join ' ', map {"'$_'"} $PYTHON, $SOAK, '--nginx', $NGINX,
        '--module', $MODULE, '--mem-min-life', 1e9, @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# --- the soak ------------------------------------------------------------

my ($rc, $out) = soak('--seconds', tscale(20), '--sdks', 6, '--panels', 6,
    '--action-rate', 150, '--churn', 15, '--reload-every', 6,
    '--sdk-restart-every', 4, '--sdk-down', 1.5, '--tls');

is($rc, 0, 'the soak passes') or diag($out);
like($out, qr/^soak: passed$/m, 'it says so');
unlike($out, qr/violation|FAILED/, 'no violation reported');

my ($reloads, $restarts, $short)
    = $out =~ /(\d+) reloads, (\d+) SDK restarts, (\d+) short-lived/;
cmp_ok($reloads // 0, '>=', 2, "nginx reloaded ($reloads)");
cmp_ok($restarts // 0, '>=', 3, "SDKs went down and came back ($restarts)");
cmp_ok($short // 0, '>=', 100, "short-lived panels ($short)");

my ($new, $retries, $probes, $done, $failed)
    = $out =~ /actions: (\d+) new, (\d+) retries, (\d+) duplicate probes; (\d+) done, (\d+) failed/;
cmp_ok($done // 0, '>=', 1000, "actions done ($done of $new)");
cmp_ok($done + $failed, '==', $new, 'every action done or failed');
cmp_ok($retries // 0, '>', 0, "retries with the same msg_id ($retries)");
my ($eph, $to_eph, $learned) = $out =~ /ephemeral targets: (\d+) SDKs, (\d+) actions sent to them, \d+ not retried as their SDK had gone; learned targets still known at the end: (\d+)/;
cmp_ok($eph // 0, '>=', 5, "SDKs dialed on demand came and went ($eph)");
cmp_ok($to_eph // 0, '>', 0, "actions dialed them ($to_eph)");
is($learned, 0, 'every one forgotten at the end');
like($out, qr/errors \{[^}]*'TARGET_UNAVAILABLE': [1-9]/,
    'actions for a down SDK got TARGET_UNAVAILABLE and were retried');
my ($dup_done) = $out =~ /duplicates \{[^}]*'done': (\d+)/;
cmp_ok($dup_done // 0, '>=', 10,
    "repeated msg_ids answered duplicate, done ($dup_done of $probes)");

my ($hb, $ev, $gaps) = $out =~ /panels read (\d+) heartbeats, (\d+) events, \d+ target_status; gaps (\d+)/;
cmp_ok($hb // 0, '>', 0, "heartbeats read ($hb)");
cmp_ok($ev // 0, '>', 1000, "events read ($ev)");
like($out, qr/closes by code: \{[^}]*1012: [1-9]/,
    'panels were closed with 1012 by the reloads and came back');
my ($tls_long, $tls_short)
    = $out =~ /over TLS: (\d+) connects of long-lived panels, (\d+) short/;
cmp_ok($tls_long // 0, '>', 2, "long-lived panels over wss://, reconnected"
    . ' after reloads (' . ($tls_long // 0) . ' connects)');
cmp_ok($tls_short // 0, '>=', 20, 'short-lived panels over wss:// ('
    . ($tls_short // 0) . ')');

# --- three instances as one (amonitor_cluster over a private Redis) ------

($rc, $out) = soak('--instances', 3, '--seconds', tscale(15), '--sdks', 4,
    '--panels', 6, '--action-rate', 150, '--churn', 10, '--reload-every', 4,
    '--sdk-restart-every', 5, '--sdk-down', 1.5);

is($rc, 0, 'three instances: the soak passes') or diag($out);
($reloads) = $out =~ /(\d+) reloads/;
cmp_ok($reloads // 0, '>=', 3, "instances reloaded in turn ($reloads)");
($new, $retries, $probes, $done, $failed)
    = $out =~ /actions: (\d+) new, (\d+) retries, (\d+) duplicate probes; (\d+) done, (\d+) failed/;
cmp_ok($done // 0, '>=', 500, "actions done across instances ($done)");
($hb, $ev) = $out =~ /panels read (\d+) heartbeats, (\d+) events/;
cmp_ok($ev // 0, '>', 500, "events read on every instance ($ev)");

# --- the checker fails when it should ------------------------------------

for my $case (['gap', qr/panels missed [1-9]\d* SDK messages, the agent dropped 0/],
    ['rerun', qr/ran 2 times/])
{
    my ($inject, $re) = @$case;
    my ($rc2, $out2) = soak('--seconds', tscale(5), '--sdks', 3, '--panels',
        3, '--reload-every', 0, '--sdk-restart-every', 0, '--inject',
        $inject);
    is($rc2, 1, "--inject $inject: the soak fails") or diag($out2);
    like($out2, $re, "--inject $inject: for that reason") or diag($out2);
    my ($kept) = $out2 =~ /nginx prefix kept: (\S+)/;
    system('rm', '-rf', $kept) if $kept && $kept =~ m{^/tmp/amon-soak-};
}

done_testing();
