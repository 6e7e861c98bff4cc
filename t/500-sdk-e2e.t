# The C SDK and the amonitor CLI through nginx: two example SDKs (one
# with a token) behind a two-worker agent; heartbeats, metrics and events
# reach a panel, the CLI's send, dedupe-check, watch, sim and bench work
# end to end, in JSON and protobuf, and everything stops cleanly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use POSIX qw(WNOHANG);

my $ROOT = $Test::AMonitor::REPO;
my $CLI = "$ROOT/build/amonitor";
my $EXAMPLE = "$ROOT/build/sdk/amonitor-sdk-example";

for my $bin ($CLI, $EXAMPLE) {
    next if -x $bin;
    fail("$bin is built (make build-sdk tools)");
    done_testing();
    exit;
}

my $t = Test::AMonitor->new(workers => 2);
my @SDKS;

# start the example SDK; its output goes to a file in the prefix
sub start_sdk {
    my (%o) = @_;
    my $log = $t->prefix . "/sdk-$o{id}.log";
    my @cmd = ($EXAMPLE, '--port', $o{port}, '--target-id', $o{id},
        '--interval', $o{interval}, @{ $o{args} // [] });
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    my $sdk = { pid => $pid, log => $log, id => $o{id} };
    push @SDKS, $sdk;
    ok(wait_for(sub { sdk_log($sdk) =~ /serving ws:/ }, tscale(5)),
        "SDK $o{id} is listening");
    return $sdk;
}

sub sdk_log {
    my ($sdk) = @_;
    open(my $fh, '<', $sdk->{log}) or return '';
    local $/;
    return <$fh> // '';
}

sub stop_sdk {
    my ($sdk) = @_;
    return undef unless $sdk->{pid};
    kill 'TERM', $sdk->{pid};
    my $status;
    wait_for(sub {
        my $r = waitpid($sdk->{pid}, WNOHANG);
        $status = $? if $r == $sdk->{pid};
        return $r != 0;
    }, tscale(5)) or do { kill 'KILL', $sdk->{pid}; waitpid($sdk->{pid}, 0) };
    $sdk->{pid} = undef;
    return $status;
}

# run the CLI; (exit status, stdout, stderr)
sub cli {
    my (@args) = @_;
    my $err = $t->prefix . "/cli.err";
    my $cmd = join(' ', map { "'$_'" } $CLI, @args);
    my $out = `$cmd 2>'$err'`;
    my $rc = $? >> 8;
    open(my $fh, '<', $err) or die "$err: $!";
    my $stderr = do { local $/; <$fh> } // '';
    return ($rc, $out, $stderr);
}

sub json_lines {
    return map { try_decode_json($_) // () } grep { /\S/ } split /\n/,
        $_[0];
}

my $a = start_sdk(port => $t->port(1), id => 'sdk-a', interval => 0.3,
    args => ['--event-interval', 0.2]);
my $b = start_sdk(port => $t->port(2), id => 'sdk-b', interval => 0.3,
    args => ['--token', 'b-secret', '--binary']);

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_target sdk-a ws://127.0.0.1:%%PORT_1%%/;\n"
        . "amonitor_target sdk-b ws://127.0.0.1:%%PORT_2%%/ token=b-secret;",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my $url = $t->ws_url('/ws/panel');

my $workers = $t->effective_workers;
for my $sdk ($a, $b) {
    ok(wait_for(sub {
        my @c = sdk_log($sdk) =~ /agent connected/g;
        @c >= $workers;
    }, tscale(5)), "every worker ($workers) connected to $sdk->{id}");
}
unlike(sdk_log($b), qr/missing or wrong bearer token/,
    'the agent presents the right token');

# --- what a panel sees --------------------------------------------------

my $p = $t->panel('/ws/panel');

my $hb = $p->recv_type('heartbeat', target_id => 'sdk-a');
ok($hb, 'a heartbeat from the JSON SDK reaches the panel');
is($hb && $hb->{json}{payload}{status}, 'up', '... status up');
ok($hb && defined $hb->{json}{payload}{metrics}{uptime_s},
    '... with the provider\'s metrics');

my $ev = $p->recv_type('event', target_id => 'sdk-a', event_name => 'tick');
ok($ev && $ev->{json}{payload}{data}{seq} >= 1,
    'events reach the panel with their data');

my $bin = $p->recv_until(sub { $_[0]{binary} || !defined $_[0]{json}
        || ($_[0]{json}{target_id} // '') eq 'sdk-b' }, tscale(3));
ok($bin, 'the protobuf SDK\'s heartbeats reach the panel too');
$p->close;

# --- the CLI --------------------------------------------------------------

my ($rc, $out, $err) = cli('send', '--url', $url, '--target-id', 'sdk-a',
    '--msg-id', "e2e-a-$$");
is($rc, 0, 'send to sdk-a: exit 0') or diag($err);
like($out, qr/^ack_matched \{.*"action_msg_id":"e2e-a-$$".*"restarted"/,
    '... ack_matched with the SDK\'s ack');

($rc, $out, $err) = cli('send', '--url', $url, '--target-id', 'sdk-b');
is($rc, 0, 'send to the protobuf SDK (token): exit 0') or diag($err);

($rc, $out, $err) = cli('send', '--url', $url, '--target-id', 'sdk-a',
    '--binary', '--json');
my ($line) = json_lines($out);
ok($rc == 0 && $line && $line->{event} eq 'ack_matched'
    && $line->{ack}{payload}{message} eq 'restarted',
    'a protobuf action from the CLI is acked') or diag($out . $err);

($rc, $out, $err) = cli('send', '--url', $url, '--target-id', 'sdk-b',
    '--action', 'reboot');
is($rc, 1, 'an unsupported action: exit 1');
like($err, qr/unsupported action: reboot/, '... with the SDK\'s message');

($rc, $out, $err) = cli('send', '--url', $url, '--target-id', 'demo-target',
    '--target-url', 'ws://127.0.0.1:' . $t->port(1));
is($rc, 0, 'an unknown target_id with a known URL reaches that SDK')
    or diag($out . $err);

($rc, $out, $err) = cli('dedupe-check', '--url', $url, '--target-id',
    'sdk-a');
is("$rc $out", "0 dedupe_ok\n", 'dedupe-check: dedupe_ok') or diag($err);

($rc, $out, $err) = cli('dedupe-check', '--url', $url, '--target-id',
    'sdk-b', '--binary');
is("$rc $out", "0 dedupe_ok\n", 'dedupe-check in protobuf: dedupe_ok')
    or diag($err);

my @restarts = sdk_log($a) =~ /action restart \(msg_id /g;
is(scalar @restarts, 4,
    'sdk-a executed each action once (duplicates stopped by the agent)');

($rc, $out, $err) = cli('watch', '--url', $url, '--once', '--timeout', 1.5,
    '--json');
my %rows = map { $_->{target_id} => $_ } json_lines($out);
ok($rc == 0 && ($rows{'sdk-a'}{state} // '') eq 'up'
    && ($rows{'sdk-b'}{state} // '') eq 'up',
    'watch: both targets up') or diag($out . $err);
ok(($rows{'sdk-a'}{events} // 0) >= 3, 'watch: counts sdk-a\'s events');

($rc, $out, $err) = cli('sim', '--url', $url, '--duration', 1.5, '--json',
    '--target-id', 'sdk-a,sdk-b');
my @sim = json_lines($out);
my @acks = grep { $_->{event} eq 'recv' && $_->{message}{type}
        && $_->{message}{type} eq 'action_ack' } @sim;
my @failed = grep { !$_->{message}{payload}{success} } @acks;
ok($rc == 0 && @acks == 2 && !@failed, 'sim: one successful ack per target')
    or diag($out . $err);

($rc, $out, $err) = cli('bench', '--url', $url, '--rate', 200,
    '--duration', 1.5, '--json', '--target-id', 'sdk-a,sdk-b');
my ($sum) = grep { $_->{event} eq 'bench_summary' } json_lines($out);
ok($rc == 0 && $sum && $sum->{sent} >= 250 && $sum->{acks} == $sum->{sent}
    && $sum->{errors} == 0, 'bench: every action acked') or diag($out);
note(sprintf('bench through nginx: %d acks, p50 %.2f ms, p99 %.2f ms',
    $sum->{acks}, $sum->{p50_ms}, $sum->{p99_ms})) if $sum;

# --- stopping -------------------------------------------------------------

ok($t->stop, 'nginx stops cleanly with agents connected to the SDKs');

for my $sdk ($a, $b) {
    my $status = stop_sdk($sdk);
    is($status, 0, "SDK $sdk->{id} exits 0 on SIGTERM");
    like(sdk_log($sdk), qr/stopping \(\d+ restarts, \d+ refused\)/,
        "... and says so");
}

done_testing();
