# The Debian packages (debian/, make deb): dpkg-buildpackage -b builds
# them in a copy of the tree, lintian finds no errors, the module package
# depends on the nginx ABI it was built against and ships its load_module
# snippet, the SDK library has its soname and an accurate symbols file.
# Installed with apt-get, the module is enabled the Debian way and the
# system nginx relays "amonitor send" to the packaged example SDK program.
# The Python binding (python3-amonitor) imports with Debian's python3,
# finds the installed library, and its packaged example program serves
# "amonitor send" too.  Purged, the packages leave nothing behind.  Needs
# root (it installs into the system); skipped with the sanitizer or
# valgrind nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Fcntl qw(:flock);
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Cwd ();

my $ROOT = $Test::AMonitor::REPO;
my @PKGS = qw(libnginx-mod-http-amonitor libamonitor-sdk1
    libamonitor-sdk-dev amonitor-tools python3-amonitor);
my $PY_EXAMPLE = '/usr/share/doc/python3-amonitor/examples/'
    . 'amonitor-sdk-example.py';
my $MODULE_SO = '/usr/lib/nginx/modules/ngx_http_amonitor_module.so';
my $SNIPPET = '/usr/share/nginx/modules-available/mod-http-amonitor.conf';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-amonitor.conf';
my $ABI_FILE = '/usr/share/nginx/src/debian/libnginx-mod.abisubstvars';
my $APT = 'apt-get -y -q -o DPkg::Lock::Timeout=300';

sub have { system("command -v '$_[0]' >/dev/null 2>&1") == 0 }

# where CI runs (as root, after scripts/deps.sh --deb) a missing tool is
# a failure; elsewhere a skip
sub cannot {
    my ($why) = @_;
    if ($ENV{CI} && $> == 0) {
        fail($why);
        done_testing();
        exit;
    }
    plan skip_all => $why;
}

plan skip_all => 'installs packages into the system: needs root'
    if $> != 0;
plan skip_all => 'the packages are tested with the system nginx, not '
    . 'the sanitizer or valgrind build'
    if $ENV{TEST_AMON_SANITIZER} || $ENV{TEST_NGINX_VALGRIND}
    || ($ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx') ne '/usr/sbin/nginx';
for my $tool (qw(dpkg-buildpackage dh lintian apt-get)) {
    cannot("$tool is missing (bash scripts/deps.sh --deb)")
        unless have($tool);
}
if (system("cd '$ROOT' && dpkg-checkbuilddeps >/dev/null 2>&1") != 0) {
    cannot('build dependencies of debian/control are missing '
        . '(bash scripts/deps.sh --deb)');
}

# one run at a time on this machine: the packages go into the system
open(my $lock, '>', '/tmp/amon-test-debian-packages.lock')
    or die "lock: $!";
flock($lock, LOCK_EX) or die "flock: $!";

for my $p (@PKGS) {
    plan skip_all => "$p is installed already; this test would remove it"
        if present($p);
}

my $tmp = tempdir('amon-deb-XXXXXX', TMPDIR => 1,
    CLEANUP => !$ENV{TEST_AMON_LEAVE});
my $out = "$tmp/deb";
my ($installed, @SDK_PIDS);

sub status {
    my ($p) = @_;
    my $s = `dpkg-query -W -f='\${db:Status-Abbrev}' '$p' 2>/dev/null`;
    return $s // '';
}

# installed, or its configuration left after a remove (dpkg's status
# letters: desired action, then state; "n" is not installed)
sub present { status($_[0]) =~ /^.[^n]/ }

sub run_log {
    my ($cmd, $log) = @_;
    system("$cmd >'$log' 2>&1");
    return $? >> 8;
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return '';
    local $/;
    return <$fh> // '';
}

sub tail_of {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    return join("\n", @l > $n ? @l[-$n .. -1] : @l);
}

sub purge {
    return unless $installed;
    my $rc = run_log("$APT purge @PKGS", "$tmp/purge.log");
    $installed = 0;
    return $rc;
}

END {
    local $?;    # the test's exit status
    kill 'TERM', $_ for grep { $_ } @SDK_PIDS;
    purge() if $installed;
}


# --- build -------------------------------------------------------------

# TEST_AMON_DEB_DIR: packages built already (make deb: build/deb), for
# working on the rest of the test; the build checks are skipped then
my ($t0, $rc, $build_log) = (time, 0, '');
if ($ENV{TEST_AMON_DEB_DIR}) {
    $out = $ENV{TEST_AMON_DEB_DIR};
}
else {
    $rc = run_log("AMON_DEB_LINTIAN=0 bash '$ROOT/scripts/deb.sh' '$out'",
        "$tmp/build.log");
    $build_log = slurp("$tmp/build.log");
    is($rc, 0, 'dpkg-buildpackage -us -uc -b builds the packages')
        or diag(tail_of($build_log, 40));
    note('build took ' . (time - $t0) . 's');
}

my %deb;
for my $p (@PKGS) {
    ($deb{$p}) = glob("$out/${p}_*.deb");
    ok($deb{$p} && -f $deb{$p}, "$p is built");
}
if (grep { !$deb{$_} } @PKGS) {
    done_testing();
    exit;
}

my ($changes) = glob("$out/*.changes");
my $lintian = `lintian --fail-on error '$changes' 2>&1`;
my $lintian_rc = $? >> 8;
is($lintian_rc, 0, 'lintian reports no errors') or diag($lintian);
my @warnings = grep { /^W: / } split /\n/, $lintian;
note("lintian warnings: " . (@warnings ? join("\n", @warnings) : 'none'));

unlike($build_log, qr/dpkg-gensymbols: warning/,
    'dpkg-gensymbols: the symbols file matches the library')
    unless $ENV{TEST_AMON_DEB_DIR};

# --- what the packages carry ------------------------------------------

my %abi = map { /^([^=#]+)=(.*)$/ ? ($1, $2) : () } split /\n/,
    slurp($ABI_FILE);
my $mod_dep = `dpkg-deb -f '$deb{"libnginx-mod-http-amonitor"}' Depends`;
ok($abi{'nginx:abi'} && $mod_dep =~ /(?:^|, )\Q$abi{'nginx:abi'}\E(?:,|$)/m,
    "the module depends on the nginx ABI it was built against "
    . "($abi{'nginx:abi'})") or diag($mod_dep);
like($mod_dep, qr/libhiredis[\d.]+ .*libprotobuf-c1 .*libssl3/,
    '... and on the libraries it links (shlibs)');

my $mod_files = `dpkg-deb -c '$deb{"libnginx-mod-http-amonitor"}'`;
like($mod_files, qr/ \.\Q$MODULE_SO\E$/m, '... ships the module .so');
like($mod_files, qr/ \.\Q$SNIPPET\E$/m, '... and its modules-available '
    . 'snippet');

my $x = "$tmp/x";
system("dpkg-deb -x '$deb{'libamonitor-sdk1'}' '$x'") == 0
    or die "dpkg-deb -x failed";
my ($lib) = glob("$x/usr/lib/*/libamonitor_sdk.so.1");
ok($lib, 'libamonitor-sdk1 ships libamonitor_sdk.so.1 in the multiarch '
    . 'directory');
my $dyn = $lib ? `objdump -p '$lib'` : '';
like($dyn, qr/SONAME\s+libamonitor_sdk\.so\.1$/m,
    '... with the soname libamonitor_sdk.so.1');

system("dpkg-deb -e '$deb{'libamonitor-sdk1'}' '$tmp/ctl'") == 0
    or die "dpkg-deb -e failed";
my %listed = map { /^ (\S+) / ? ($1, 1) : () } split /\n/,
    slurp("$tmp/ctl/symbols");
# "name@@VERSION" in nm, "name@VERSION" in symbols files; the version
# node itself is an absolute symbol without a version in nm
my %exported = map {
        my @f = split;
        my $n = $f[2] =~ s/@@?/@/r;
        $n .= "\@$n" if $f[1] eq 'A' && $n !~ /@/;
        ($n, 1);
    }
    grep { /^\S+ [A-Z] / } split /\n/,
    ($lib ? `nm -D --defined-only --with-symbol-versions '$lib'` : '');
ok(%exported && join(',', sort keys %listed) eq join(',', sort keys
    %exported), 'the symbols file lists exactly the exported symbols ('
    . scalar(keys %exported) . ')')
    or diag('listed: ' . join(' ', sort keys %listed) . "\nexported: "
    . join(' ', sort keys %exported));

my $tools_dep = `dpkg-deb -f '$deb{'amonitor-tools'}' Depends`;
like($tools_dep, qr/libamonitor-sdk1 \(>= /,
    'amonitor-tools depends on the SDK library its example links');

my $py_deb = $deb{'python3-amonitor'};
is(`dpkg-deb -f '$py_deb' Architecture`, "all\n",
    'python3-amonitor is Architecture: all');
my $py_dep = `dpkg-deb -f '$py_deb' Depends`;
like($py_dep, qr/(?:^|, )libamonitor-sdk1 \(>= [^)]+\)/,
    '... depends on the SDK library it loads');
like($py_dep, qr/(?:^|, )python3(?::any)?(?: \([^)]*\))?(?:,|$)/m,
    '... and on python3 (${python3:Depends})') or diag($py_dep);
my $py_files = `dpkg-deb -c '$py_deb'`;
like($py_files, qr{ \./usr/lib/python3/dist-packages/amonitor/__init__\.py$}m,
    '... ships the amonitor package in /usr/lib/python3/dist-packages');
like($py_files, qr{ \./usr/lib/python3/dist-packages/amonitor/py\.typed$}m,
    '... with py.typed');
like($py_files, qr{ \.\Q$PY_EXAMPLE\E$}m, '... and the example program');
unlike($py_files, qr{__pycache__|\.pyc$}m, '... and no byte code');


# --- install -------------------------------------------------------------

my %etc_before = map { $_ => 1 } split /\n/, `find /etc -print 2>/dev/null`;
my @debs = map { './' . ($deb{$_} =~ s{.*/}{}r) } @PKGS;
$installed = 1;
$rc = run_log("cd '$out' && $APT install @debs", "$tmp/install.log");
is($rc, 0, "apt-get install @debs") or diag(slurp("$tmp/install.log"));
for my $p (@PKGS) {
    like(status($p), qr/^ii/, "$p is installed");
}

is(readlink($ENABLED), $SNIPPET, 'the module is enabled: '
    . "$ENABLED -> $SNIPPET");
is(slurp($SNIPPET), "load_module modules/ngx_http_amonitor_module.so;\n",
    '... with its load_module line');

my $nt = `/usr/sbin/nginx -t 2>&1`;
is($? >> 8, 0, "nginx -t with Debian's nginx.conf loads the module")
    or diag($nt);

my %files;
for my $p (@PKGS) {
    $files{$p} = [grep { length } split /\n/, `dpkg -L '$p'`];
}
my $example = '/usr/bin/amonitor-sdk-example';
like(`ldd $example`,
    qr{libamonitor_sdk\.so\.1 => (?:/usr)?/lib/[^/]+/libamonitor_sdk\.so\.1},
    'the example program runs on the installed SDK library');

# the Python binding as a program would use it: Debian's python3, no
# environment pointing at the source tree
my $py_cmd = 'cd / && env -u AMONITOR_SDK_LIB -u PYTHONPATH /usr/bin/python3 '
    . q{-c 'import amonitor; print(amonitor.__file__); }
    . q{print(amonitor.library_path())' 2>&1};
my $py = `$py_cmd`;
is($? >> 8, 0, '/usr/bin/python3 imports the installed amonitor package')
    or diag($py);
my ($py_file, $py_lib) = split /\n/, $py;
is($py_file, '/usr/lib/python3/dist-packages/amonitor/__init__.py',
    '... from /usr/lib/python3/dist-packages');
my ($sdk_so) = grep { m{/libamonitor_sdk\.so\.1$} }
    @{ $files{'libamonitor-sdk1'} };
is($py_lib, $sdk_so ? Cwd::realpath($sdk_so) : 'libamonitor_sdk.so.1',
    '... which loads the installed libamonitor_sdk.so.1');


# --- the system nginx with the packaged module ------------------------

my $t = Test::AMonitor->new(module => 0, workers => 2);
# the snippet names "modules/...", relative to nginx's prefix: the
# private prefix gets the link that /usr/share/nginx has
symlink('/usr/lib/nginx/modules', $t->prefix . '/modules')
    or die "symlink: $!";

my $sdk_log = "$tmp/sdk.log";
my $sdk_port = $t->port(1);    # allocated (and locked) here, not in the child
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDOUT, '>', $sdk_log) or POSIX::_exit(126);
    open(STDERR, '>&', \*STDOUT);
    exec($example, '--port', $sdk_port, '--target-id', 'deb-demo',
        '--interval', '0.3') or POSIX::_exit(127);
}
push @SDK_PIDS, $pid;
ok(wait_for(sub { slurp($sdk_log) =~ /serving ws:/ }, tscale(5)),
    'the packaged example SDK program is listening');

my $py_log = "$tmp/py-sdk.log";
my $py_port = $t->port(2);
my $py_pid = fork() // die "fork: $!";
if ($py_pid == 0) {
    open(STDOUT, '>', $py_log) or POSIX::_exit(126);
    open(STDERR, '>&', \*STDOUT);
    delete @ENV{qw(AMONITOR_SDK_LIB PYTHONPATH)};
    chdir('/');
    exec('/usr/bin/python3', $PY_EXAMPLE, '--port', $py_port,
        '--target-id', 'deb-py', '--interval', '0.3', '--asyncio')
        or POSIX::_exit(127);
}
push @SDK_PIDS, $py_pid;
ok(wait_for(sub { slurp($py_log) =~ /serving ws:/ }, tscale(10)),
    'the packaged Python example program is listening')
    or diag(slurp($py_log));

$t->write_config(
    main_config => 'include /etc/nginx/modules-enabled/*.conf;',
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_reconnect 50ms 300ms;\n"
        . "amonitor_target deb-demo ws://127.0.0.1:%%PORT_1%%/;\n"
        . "amonitor_target deb-py ws://127.0.0.1:%%PORT_2%%/;",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

my $maps = slurp('/proc/' . $t->master_pid . '/maps');
like($maps, qr/ \Q$MODULE_SO\E$/m,
    'nginx runs the packaged module from /usr/lib/nginx/modules');

my $workers = $t->effective_workers;
ok(wait_for(sub {
    my @c = slurp($sdk_log) =~ /agent connected/g;
    @c >= $workers;
}, tscale(5)), "every worker ($workers) connected to the example SDK");

my $p = $t->panel('/ws/panel');
my $hb = $p->recv_type('heartbeat', target_id => 'deb-demo');
is($hb && $hb->{json}{payload}{status}, 'up',
    'a heartbeat of the example SDK reaches a panel');
$p->close;

my $url = $t->ws_url('/ws/panel');
my $cli = "amonitor send --url '$url' --target-id deb-demo --msg-id deb-$$";
my $send = `$cli 2>&1`;
is($? >> 8, 0, 'amonitor send: exit 0') or diag($send);
like($send, qr/^ack_matched \{.*"action_msg_id":"deb-$$".*"restarted"/,
    '... ack_matched with the example SDK\'s ack');

my $dd = `amonitor dedupe-check --url '$url' --target-id deb-demo 2>&1`;
is("$? $dd", "0 dedupe_ok\n", 'amonitor dedupe-check: dedupe_ok');

$send = `amonitor send --url '$url' --target-id deb-py --msg-id py-$$ 2>&1`;
is($? >> 8, 0, 'amonitor send to the Python example: exit 0') or diag($send);
like($send, qr/^ack_matched \{.*"action_msg_id":"py-$$".*"restarted"/,
    '... ack_matched with its ack');

kill 'TERM', $pid;
ok(wait_for(sub { waitpid($pid, WNOHANG) == $pid }, tscale(5)),
    'the example SDK program stops on SIGTERM');
kill 'TERM', $py_pid;
ok(wait_for(sub { waitpid($py_pid, WNOHANG) == $py_pid }, tscale(5)),
    'the Python example program stops on SIGTERM');
like(slurp($py_log), qr/stopping \(1 restarts, 0 refused\)/,
    '... having run its handler once');
@SDK_PIDS = ();
$t->stop;

# the autopkgtests of debian/tests/, against the installed packages
for my $test (qw(nginx-module sdk-build python-import)) {
    my $d = "$tmp/autopkgtest-$test";
    mkdir $d or die "mkdir: $!";
    chmod 0755, $d;
    my $r = run_log("AUTOPKGTEST_TMP='$d' bash '$ROOT/debian/tests/$test'",
        "$tmp/$test.log");
    is($r, 0, "autopkgtest $test passes") or diag(slurp("$tmp/$test.log"));
}


# --- purge -------------------------------------------------------------

$rc = purge();
is($rc, 0, 'apt-get purge removes the packages')
    or diag(slurp("$tmp/purge.log"));
for my $p (@PKGS) {
    ok(!present($p), "$p is gone, configuration included")
        or diag(status($p));
}

my @left;
for my $p (@PKGS) {
    for my $f (@{ $files{$p} }) {
        next if -d $f && !-l $f && $f !~ m{/doc/\Q$p\E$};
        push @left, $f if -e $f || -l $f;
    }
}
is("@left", '', 'no file of the packages (dpkg -L) is left');

my @etc_new = grep { !$etc_before{$_} && (m{^/etc/nginx/} || /amonitor/i) }
    split /\n/, `find /etc -print 2>/dev/null`;
push @etc_new, grep { -e $_ || -l $_ } "$ENABLED", "$ENABLED.removed";
is("@etc_new", '', 'nothing is left in /etc');

done_testing();
