# A second demo started beside a running one refuses before it changes
# anything (examples/demo.sh, examples/run.cluster.sh): with the same
# directory (DEMO_PREFIX, the shared build/demo of two `make demo`s) it
# says a demo of that directory is running, with its port in use it says
# so, and after the first demo's script was killed its nginx (still
# named in nginx.pid) stops a new start too.  The first demo's files
# (nginx.conf, sdks.txt, nginx.pid, error.log, logs/sdk-*.log; the
# cluster's instance-N/logs) are left as they were.  The cluster demo
# says how to get redis-server (make demo-cluster, scripts/deps.sh
# --cluster), and that option installs it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Test::AMonitor::Util qw(free_port);
use Test::AMonitor::Process qw(start_session);

my $root = "$FindBin::Bin/..";
for my $f ("$root/build/ngx_http_amonitor_module.so", "$root/build/amonitor",
    "$root/build/sdk/amonitor-sdk-example", '/usr/bin/redis-server') {
    next if -e $f;
    fail("$f is there (make module tools build-sdk; make test-deps)");
    done_testing();
    exit;
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return undef;
    local $/;
    return <$fh> // '';
}

sub wait_until {
    my ($cond, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.2;
    }
    return $cond->();
}


# run a script to its end; (exit code, output)
sub run_fg {
    my ($env, @cmd) = @_;
    local @ENV{ keys %$env } = values %$env;
    my $cmd = join ' ', map { "'$_'" } @cmd;
    my $out = `cd '$root' && timeout 60 $cmd </dev/null 2>&1`;
    return ($? >> 8, $out);
}

# the files of a demo directory: name => content
sub snapshot {
    my ($dir, @names) = @_;
    return { map { $_ => slurp("$dir/$_") } @names };
}

sub stop_bg {
    my ($pid) = @_;
    kill 'INT', -$pid;
    my $gone = wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 30);
    kill 'KILL', -$pid unless $gone;
    return $gone;
}

# --- make demo, twice ----------------------------------------------------

my $prefix = tempdir('amon-demo2-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $agent = free_port();
my $sdk = free_port(2);
my %env = (NO_BUILD => 1, DEMO_PREFIX => $prefix, AGENT_PORT => $agent,
    SDK_START_PORT => $sdk);
my $out = "$prefix.out";
my $first = start_session($out, $root, \%env, 'bash', 'examples/run.sh');
ok(wait_until(sub { (slurp($out) // '') =~ /connected to/ }, 60),
    'a first demo runs') or diag(slurp($out));

my @files = ('nginx.conf', 'sdks.txt', 'nginx.pid', 'error.log',
    'logs/sdk-demo-target-a.log', 'logs/sdk-demo-target-b.log');
my $before = snapshot($prefix, @files);
is(scalar(grep { defined $before->{$_} } @files), scalar @files,
    'with its files') or diag(explain($before));

sub intact {
    my ($what) = @_;
    my $now = snapshot($prefix, @files);
    for my $f (@files) {
        if ($f =~ /\.log$/) {
            # logs only grow while the first demo runs
            ok(defined $now->{$f} && index($now->{$f}, $before->{$f}) == 0,
                "$what: $f is still there, as it was");
        } else {
            is($now->{$f}, $before->{$f}, "$what: $f unchanged");
        }
    }
}

# the same directory, other ports: a demo of it runs
my $agent2 = free_port();
my $sdk2 = free_port(2);
my ($rc, $text) = run_fg({ %env, AGENT_PORT => $agent2,
    SDK_START_PORT => $sdk2 }, 'bash', 'examples/run.sh');
is($rc, 1, 'a second demo of the same directory (other ports) refuses');
like($text, qr/a demo of \Q$prefix\E is running.*nothing was changed/s,
    '... and says why') or diag($text);
intact('after it');

# the same directory and ports (two plain `make demo`s)
($rc, $text) = run_fg(\%env, 'bash', 'examples/run.sh');
is($rc, 1, 'a second demo with the same directory and ports refuses');
intact('after it');

# another directory, the same agent port: refused before it writes there
my $other = tempdir('amon-demo3-XXXXXX', TMPDIR => 1, CLEANUP => 1);
($rc, $text) = run_fg({ %env, DEMO_PREFIX => $other,
    SDK_START_PORT => $sdk2 }, 'bash', 'examples/run.sh');
is($rc, 1, 'a demo on a port in use refuses');
like($text, qr/port $agent is in use/, '... naming the port') or diag($text);
ok(!-e "$other/nginx.conf" && !-e "$other/logs",
    '... before it writes its own directory');

# an SDK port in use
($rc, $text) = run_fg({ %env, DEMO_PREFIX => $other, AGENT_PORT => $agent2 },
    'bash', 'examples/run.sh');
is($rc, 1, 'a demo on an SDK port in use refuses');
like($text, qr/port $sdk \(for demo-target-a\) is in use/, '... naming it')
    or diag($text);

# the first script killed: its nginx still runs and holds the directory
my ($nginx) = (slurp("$prefix/nginx.pid") // '') =~ /(\d+)/;
my ($sdks) = (slurp($out) // '') =~ /started 2 SDK\(s\) \(pids ([\d ]+)\)/;
kill 'KILL', $first;
waitpid($first, 0);
($rc, $text) = run_fg({ %env, AGENT_PORT => $agent2,
    SDK_START_PORT => $sdk2 }, 'bash', 'examples/run.sh');
is($rc, 1, 'with the first script killed, its nginx still refuses a demo '
    . 'of the directory');
like($text, qr/nginx of an earlier demo .* still runs \(pid \Q$nginx\E/,
    '... and says so') or diag($text);
intact('after it');
kill 'QUIT', $nginx if $nginx;
kill 'TERM', split(' ', $sdks // '');
kill 'KILL', -$first;
ok(wait_until(sub { !grep { kill 0, $_ } ($nginx // (), split(' ', $sdks // '')) },
    10), 'the first demo\'s nginx and SDKs stopped');

# --- the cluster demo, twice -------------------------------------------

my $cprefix = tempdir('amon-cluster2-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my %cenv = (NO_BUILD => 1, DEMO_PREFIX => $cprefix, DEMO_DURATION => 60,
    REDIS_PORT => free_port(), AGENT_PORT => free_port(3),
    SDK_START_PORT => free_port(2));
my $cout = "$cprefix.out";
my $cluster = start_session($cout, $root, \%cenv, 'bash',
    'examples/run.cluster.sh');
ok(wait_until(sub { (slurp($cout) // '') =~ /Ctrl-C stops everything/ }, 60),
    'a first cluster demo runs') or diag(slurp($cout));
my @cfiles = ('redis.pid', map { ("instance-$_/nginx.conf",
    "instance-$_/logs/nginx.pid") } 1 .. 3);
my $cbefore = snapshot($cprefix, @cfiles);
is(scalar(grep { defined $cbefore->{$_} } @cfiles), scalar @cfiles,
    'with its files');

($rc, $text) = run_fg({ %cenv, REDIS_PORT => free_port(),
    AGENT_PORT => free_port(3), SDK_START_PORT => free_port(2) },
    'bash', 'examples/run.cluster.sh');
is($rc, 1, 'a second cluster demo of the same directory refuses');
like($text, qr/a cluster demo of \Q$cprefix\E is running/, '... and says why')
    or diag($text);
is_deeply(snapshot($cprefix, @cfiles), $cbefore,
    'the first one\'s instance-N/logs/nginx.pid and redis.pid are intact');

($rc, $text) = run_fg({ %cenv,
    DEMO_PREFIX => tempdir('amon-cluster3-XXXXXX', TMPDIR => 1, CLEANUP => 1),
    AGENT_PORT => free_port(3), SDK_START_PORT => free_port(2) },
    'bash', 'examples/run.cluster.sh');
is($rc, 1, 'a cluster demo on a Redis port in use refuses');
like($text, qr/port $cenv{REDIS_PORT} is in use/, '... naming the port');

ok(stop_bg($cluster), 'the first cluster demo stops on Ctrl-C');
like(slurp($cout), qr/stopping 3 nginx instance\(s\) \(nginx -s quit\)/,
    '... stopping the instances gracefully');

# --- redis-server: where it comes from ------------------------------------

($rc, $text) = run_fg({ %cenv, REDIS => '/nonexistent/redis-server',
    DEMO_PREFIX => tempdir('amon-cluster4-XXXXXX', TMPDIR => 1, CLEANUP => 1)
    }, 'bash', 'examples/run.cluster.sh');
is($rc, 1, 'the cluster demo without redis-server refuses');
like($text, qr/make demo-cluster installs it \(scripts\/deps\.sh\s+--cluster\)/,
    '... and says what installs it') or diag($text);

($rc, $text) = run_fg({}, 'bash', 'scripts/deps.sh', '--cluster');
is($rc, 0, 'scripts/deps.sh --cluster is an option (nothing to install here)')
    or diag($text);
$text = `make -n -C '$root' demo-cluster 2>&1`;
like($text, qr/deps\.sh --cluster/, 'make demo-cluster runs it');

done_testing();
