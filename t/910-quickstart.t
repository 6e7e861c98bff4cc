# README's quick start: `make demo` starts nginx with the module, two
# example SDKs and the panel simulator, which shows heartbeats and acks;
# `build/amonitor send` and `build/amonitor dedupe-check` succeed against
# it; Ctrl-C (SIGINT to the demo's process group) stops everything the
# demo started.  The demo's ports are moved to free ones with the
# variables it honours (AGENT_PORT, SDK_START_PORT; README and
# examples/README.md), so the test does not depend on 8080, 8765 and 8766.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX qw(setsid :sys_wait_h);
use Time::HiRes qw(time sleep);
use Test::AMonitor::Util qw(free_port);

my $root = "$FindBin::Bin/..";
my $agent = free_port();
my $sdk = free_port(2);
my @ports = ($agent, $sdk, $sdk + 1);
my $url = "ws://127.0.0.1:$agent/ws/panel";

sub port_open {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $_[0],
        Timeout => 1);
    close $s if $s;
    return $s ? 1 : 0;
}

my $out = "$root/build/quickstart-demo.log";
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    setsid();
    open STDOUT, '>', $out or die;
    open STDERR, '>&', \*STDOUT or die;
    open STDIN, '<', '/dev/null' or die;
    chdir $root or die;
    $ENV{AGENT_PORT} = $agent;
    $ENV{SDK_START_PORT} = $sdk;
    exec 'make', '--no-print-directory', 'demo';
    die "exec: $!";
}

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

# Ctrl-C: the terminal sends SIGINT to the foreground process group
kill 'INT', -$pid;
my $gone = wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 20);
ok($gone, 'the demo ends on Ctrl-C');
kill 'KILL', -$pid unless $gone;

ok(wait_until(sub { !grep { port_open($_) } @ports }, 10),
    "nginx and both SDKs are gone (ports @ports closed)");
my @left = grep { kill 0, $_ } map { /^\s*(\d+)/ ? $1 : () }
    `ps -o pid= -g $pid 2>/dev/null`;
is(scalar @left, 0, 'no process of the demo is left');

done_testing();
