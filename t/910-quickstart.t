# README's quick start: `make demo` starts nginx with the module, two
# example SDKs and the panel simulator, which shows heartbeats and acks;
# `build/amonitor send` and `build/amonitor dedupe-check` succeed against
# it; Ctrl-C (SIGINT to the demo's process group) stops everything the
# demo started, nginx gracefully and before the SDKs (the SIGINT does not
# reach nginx and the SDKs, which run in sessions of their own: the
# script sends nginx a QUIT, a panel gets its 1012).  The demo's ports
# are moved to free ones with the variables it honours (AGENT_PORT,
# SDK_START_PORT; README and examples/README.md), and its files to a
# directory of the test's own (DEMO_PREFIX), so the test does not depend
# on 8080, 8765 and 8766 nor on a demo running in build/demo.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);
use Test::AMonitor::Util qw(free_port);
use Test::AMonitor::Process qw(start_session);
use Test::AMonitor::Panel qw(panel_connect);

my $root = "$FindBin::Bin/..";
my $agent = free_port();
my $sdk = free_port(2);
my @ports = ($agent, $sdk, $sdk + 1);
my $url = "ws://127.0.0.1:$agent/ws/panel";
my $prefix = tempdir('amon-quickstart-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub port_open {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $_[0],
        Timeout => 1);
    close $s if $s;
    return $s ? 1 : 0;
}

my $out = "$root/build/quickstart-demo.log";
my $pid = start_session($out, $root, { AGENT_PORT => $agent,
    SDK_START_PORT => $sdk, DEMO_PREFIX => $prefix },
    'make', '--no-print-directory', 'demo');

sub demo_log { local (@ARGV, $/) = $out; return -f $out ? <> // '' : '' }

sub wait_until {
    my ($cond, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.2;
    }
    return $cond->();
}

ok(wait_until(sub { demo_log() =~ /connected to \Q$url\E/ }, 180),
    "make demo (AGENT_PORT=$agent SDK_START_PORT=$sdk) starts the stack and "
    . 'the panel simulator connects')
    or diag(demo_log());
ok(wait_until(sub { demo_log() =~ /recv\s+action_ack\s+demo-target-a.*success=true/ },
    15), 'the simulator gets the ack of demo-target-a');
ok(wait_until(sub { demo_log() =~ /recv\s+action_ack\s+demo-target-b.*success=true/ },
    15), 'and of demo-target-b');
ok(wait_until(sub { demo_log() =~ /recv\s+heartbeat\s+demo-target-a/
        && demo_log() =~ /recv\s+heartbeat\s+demo-target-b/ }, 15),
    'heartbeats of both SDKs arrive');

my $send = `cd $root && build/amonitor send --url $url --target-id demo-target-a --action restart 2>&1`;
is($? >> 8, 0, 'build/amonitor send exits 0');
like($send, qr/^ack_matched/m, 'and prints ack_matched');

my $dedupe = `cd $root && build/amonitor dedupe-check --url $url 2>&1`;
is($? >> 8, 0, 'build/amonitor dedupe-check exits 0');
like($dedupe, qr/^dedupe_ok/m, 'and prints dedupe_ok');

# what the demo started outside its process group
my ($nginx_pid) = demo_log() =~ /nginx pid (\d+)/;
my ($sdk_pids) = demo_log() =~ /started 2 SDK\(s\) \(pids ([\d ]+)\)/;
my @started = ($nginx_pid // (), split(' ', $sdk_pids // ''));
is(scalar @started, 3, 'the demo names the pids of nginx and the SDKs')
    or diag(demo_log());

# a panel of the user's own (a dashboard) sees how nginx stops
my $panel = panel_connect($url);

# Ctrl-C: the terminal sends SIGINT to the foreground process group
kill 'INT', -$pid;
my $gone = wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 20);
ok($gone, 'the demo ends on Ctrl-C');
kill 'KILL', -$pid unless $gone;

is($panel->wait_closed(10), 1012, 'a panel gets the 1012 of a graceful '
    . 'stop (nginx -s quit)');
is($panel->close_reason, 'agent reloading or stopping: reconnect',
    '... with its reason');

my $log = do { local (@ARGV, $/) = "$prefix/error.log"; -f $ARGV[0] ? <> : '' };
like($log, qr/signal 3 \(SIGQUIT\) received/, 'nginx got a QUIT');
unlike($log, qr/signal 2 \(SIGINT\)/, 'and not the SIGINT of the Ctrl-C');
like(demo_log(), qr/stopping nginx.*\n(?:.*\n)*.*stopping 2 SDK/,
    'the script stops nginx before the SDKs');
for my $id (qw(demo-target-a demo-target-b)) {
    my $sl = do { local (@ARGV, $/) = "$prefix/logs/sdk-$id.log";
        -f $ARGV[0] ? <> : '' };
    like($sl, qr/"\Q$id\E" stopped/, "$id stopped (its log)");
}

ok(wait_until(sub { !grep { port_open($_) } @ports }, 10),
    "nginx and both SDKs are gone (ports @ports closed)");
ok(wait_until(sub { !grep { kill 0, $_ } @started }, 10),
    "no pid of nginx and the SDKs is left (@started)");
my @left = grep { kill 0, $_ } map { /^\s*(\d+)/ ? $1 : () }
    `ps -o pid= -g $pid 2>/dev/null`;
is(scalar @left, 0, 'no process of the demo is left');

done_testing();
