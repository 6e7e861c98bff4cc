package Test::AMonitor;

# Test harness of ngx_http_amonitor_module: runs a real nginx (the system
# binary or $TEST_NGINX_BINARY) with the module loaded in a temporary
# prefix, and drives it with Mojolicious WebSocket peers.  Two styles:
# data-driven __DATA__ blocks (run_tests) and a programmatic API.  The
# documentation is the POD at the end and docs/testing.md.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h _exit);
use Scalar::Util qw(blessed weaken);
use Test::Builder;
use Test::More;
use Time::HiRes qw(time);

use Test::AMonitor::Util qw(wait_for sleep_loop free_port uuid4
    encode_json decode_json try_decode_json now_ms note_verbose tscale
    default_timeout json_text);
use Test::AMonitor::Panel;
use Test::AMonitor::FakeSDK;
use Test::AMonitor::Raw qw(raw_connect raw_ws_connect raw_send raw_read
    raw_read_frame raw_http http_request parse_http_response ws_frame
    ws_accept_key raw_eof slow_panel);

our @EXPORT = (
    @Test::More::EXPORT,
    qw(run_tests fake_sdk panel_connect panel_try_connect
    panel_handshake_status error_log_like no_error_log wait_error_log
    nginx_t current_nginx wait_for sleep_loop free_port uuid4 encode_json
    decode_json try_decode_json json_text now_ms tscale default_timeout
    raw_connect raw_ws_connect raw_send raw_read raw_read_frame raw_http
    http_request parse_http_response ws_frame ws_accept_key raw_eof
    slow_panel scan_log_text panels_per_worker)
);

our $REPO = abs_path(dirname(__FILE__) . '/../../..');
our $MODULE_SO = 'ngx_http_amonitor_module.so';

# what makes an error log dirty
our @BAD_LOG = (
    qr/\[(?:alert|crit|emerg)\]/,
    qr/ERROR: AddressSanitizer/,
    qr/ERROR: LeakSanitizer/,
    qr/runtime error:/,
    qr/exited on signal/,
    qr/ERROR SUMMARY: [1-9]/,    # valgrind
);

my $MAIN_PID = $$;
my @INSTANCES;    # every nginx object made in this file (weak refs)
my @RETIRED;      # what the final check needs of instances already gone
my @SDKS;         # fake SDKs made through fake_sdk() (weak refs)
my $CURRENT;      # the instance the function-style helpers use
my $FINAL_DONE = 0;
my %BIN_DEBUG;    # binary => has --with-debug


# --- construction and configuration ---------------------------------------

sub new {
    my ($class, %opt) = @_;
    my ($self, $leave, $prefix);

    $leave = $ENV{TEST_AMON_LEAVE} ? 1 : 0;
    $prefix = $opt{prefix} // tempdir('amon-test-XXXXXX', TMPDIR => 1,
        CLEANUP => !$leave);
    chmod 0755, $prefix;    # workers run as nobody when the test is root

    $self = bless {
        prefix        => abs_path($prefix),
        binary        => _abs($opt{binary} // $ENV{TEST_NGINX_BINARY}
                             // '/usr/sbin/nginx'),
        module        => $opt{module} // 1,
        module_path   => _abs($opt{module_path} // $ENV{TEST_AMON_MODULE}
                             // "$REPO/build/nginx/$MODULE_SO"),
        workers       => $opt{workers} // 1,
        worker_connections => $opt{worker_connections} // 1024,
        log_level     => $opt{log_level},
        valgrind      => _valgrind_mode($opt{valgrind}
                             // $ENV{TEST_NGINX_VALGRIND}),
        start_timeout => $opt{start_timeout} // tscale(10),
        stop_timeout  => $opt{stop_timeout} // tscale(10),
        ports         => {},
        parts         => {},
        running       => 0,
        pid           => undef,
        child         => undef,
        log_mark      => 0,
        ignore        => [],
        problems      => [],
        t_count       => 0,
        starts        => 0,
        leave         => $leave,
        owner         => $$,
    }, $class;

    $self->write_config(%{ $opt{config_parts} }) if $opt{config_parts};
    push @INSTANCES, $self;
    weaken $INSTANCES[-1];
    $CURRENT = $self;
    weaken $CURRENT;
    note_verbose("nginx prefix $self->{prefix}");
    return $self;
}

# 0 (no valgrind), 'master' (default when on: master and workers under
# valgrind) or 'single' (master_process off)
sub _valgrind_mode {
    my ($v) = @_;
    return 0 unless $v;
    return $v eq 'single' ? 'single' : 'master';
}

sub _abs {
    my ($p) = @_;
    return $p if File::Spec->file_name_is_absolute($p);
    return File::Spec->rel2abs($p);
}

sub current_nginx { $CURRENT }

sub _is_self { blessed $_[0] && $_[0]->isa(__PACKAGE__) }

sub _current {
    croak "no nginx instance: create one with Test::AMonitor->new"
        unless $CURRENT;
    return $CURRENT;
}

sub prefix      { $_[0]{prefix} }
sub binary      { $_[0]{binary} }
sub module_path { $_[0]{module_path} }
sub valgrind    { $_[0]{valgrind} }

# true when nginx runs without a master process (TEST_NGINX_VALGRIND=single)
sub single_process { $_[0]{valgrind} && $_[0]{valgrind} eq 'single' }
sub is_running  { $_[0]{running} }

sub workers {
    my ($self, $n) = @_;
    $self->{workers} = $n if defined $n;
    return $self->{workers};
}

# the number of worker processes nginx really runs (1 without a master)
sub effective_workers {
    my ($self) = @_;
    return $self->single_process ? 1 : $self->{workers};
}

sub module {
    my ($self, $on) = @_;
    $self->{module} = $on if defined $on;
    return $self->{module};
}

# the port %%PORT_n%% stands for (allocated and locked on first use)
sub port {
    my ($self, $n) = @_;
    $n //= 0;
    $self->{ports}{$n} //= free_port();
    return $self->{ports}{$n};
}

sub url {
    my ($self, $path, $n) = @_;
    return 'http://127.0.0.1:' . $self->port($n // 0) . ($path // '/');
}

sub ws_url {
    my ($self, $path, $n) = @_;
    return 'ws://127.0.0.1:' . $self->port($n // 0) . ($path // '/');
}

# write_config(main_config =>, events_config =>, http_config =>,
#              config =>, server => 1, conf =>)
sub write_config {
    my ($self, %parts) = @_;
    $self->{parts} = { %parts };
    return $self;
}

sub config_parts { %{ $_[0]{parts} } }

sub _has_debug {
    my ($self) = @_;
    my $bin = $self->{binary};
    if (!exists $BIN_DEBUG{$bin}) {
        my $v = `"$bin" -V 2>&1`;
        $BIN_DEBUG{$bin} = ($v // '') =~ /--with-debug/ ? 1 : 0;
    }
    return $BIN_DEBUG{$bin};
}

sub _fill {
    my ($self, $text) = @_;
    $text =~ s/%%PORT_(\d+)%%/$self->port($1)/ge;
    $text =~ s/%%PREFIX%%/$self->{prefix}/g;
    $text =~ s/%%REPO%%/$REPO/g;
    $text =~ s/%%TESTDIR%%/$FindBin::Bin/g;
    return $text;
}

# the complete nginx.conf for directory $dir (the prefix, or an nginx -t
# scratch directory)
sub conf_text {
    my ($self, $dir, %parts) = @_;
    my ($level, @h, $body, $temp);

    $dir //= $self->{prefix};
    %parts = %{ $self->{parts} } unless %parts;
    $level = $self->{log_level} // ($self->_has_debug ? 'debug' : 'info');

    if ($self->{module}) {
        croak "module not built: $self->{module_path} (run make module)"
            unless -f $self->{module_path};
        push @h, "load_module $self->{module_path};";
    }
    if ($self->{valgrind}) {
        # under valgrind nginx stays in the foreground as the harness's
        # child; forked workers stay under valgrind with logs of their own
        push @h, 'daemon off;',
            'master_process ' . ($self->single_process ? 'off;' : 'on;');
    }
    else {
        push @h, 'daemon on;', 'master_process on;';
    }
    push @h, "worker_processes $self->{workers};",
        "error_log $dir/error.log $level;",
        "pid $dir/nginx.pid;", '';

    if (defined $parts{conf}) {
        $body = $parts{conf};
    }
    else {
        $temp = join '', map { "    ${_}_temp_path $dir/${_}_temp;\n" }
            qw(client_body proxy fastcgi uwsgi scgi);
        $body = ($parts{main_config} // '') . "\n"
            . "events {\n"
            . "    worker_connections $self->{worker_connections};\n"
            . ($parts{events_config} // '') . "\n"
            . "}\n\n"
            . "http {\n"
            . "    access_log $dir/access.log;\n"
            . $temp
            . ($parts{http_config} // '') . "\n";
        if ($parts{server} // 1) {
            $body .= "    server {\n"
                . "        listen 127.0.0.1:%%PORT_0%%;\n"
                . "        server_name localhost;\n"
                . ($parts{config} // '') . "\n"
                . "    }\n";
        }
        $body .= "}\n";
    }

    return $self->_fill(join("\n", @h) . $body);
}


# --- processes --------------------------------------------------------------

sub _proc_stat {
    my ($pid) = @_;
    my $fh;
    open($fh, '<', "/proc/$pid/stat") or return;
    my $s = <$fh> // '';
    close $fh;
    # pid (comm) state ppid ...
    $s =~ /\)\s+(\S)\s+(\d+)/ or return;
    return ($1, $2);
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    my ($state) = _proc_stat($pid);
    return 0 if !defined $state || $state eq 'Z' || $state eq 'X';
    return 1;
}

sub _cmdline {
    my ($pid) = @_;
    my $fh;
    open($fh, '<', "/proc/$pid/cmdline") or return '';
    local $/;
    my $c = <$fh> // '';
    close $fh;
    $c =~ tr/\0/ /;
    $c =~ s/\s+\z//;
    return $c;
}

sub _children {
    my ($ppid) = @_;
    my ($dh, @out);
    opendir($dh, '/proc') or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my ($state, $pp) = _proc_stat($pid);
        next unless defined $pp && $pp == $ppid;
        next if $state eq 'Z';
        push @out, $pid;
    }
    closedir $dh;
    @out = sort { $a <=> $b } @out;
    return @out;
}

sub master_pid { $_[0]{pid} }

# pids of the workers that are not shutting down
sub worker_pids {
    my ($self) = @_;
    my @w;
    return @w unless $self->{running} && $self->{pid};
    if ($self->single_process) {
        @w = ($self->{pid});
    }
    elsif ($self->{valgrind}) {
        # process titles are invisible under valgrind (/proc shows the
        # valgrind command line); the debug log tells who shuts down
        my $gone = $self->_shutting_down;
        @w = grep { !$gone->{$_} } _children($self->{pid});
    }
    else {
        @w = grep { _cmdline($_) =~ /worker process$/ }
            _children($self->{pid});
    }
    return @w;
}

sub _shutting_down {
    my ($self) = @_;
    my $new = _read_file($self->error_log_path, $self->{sd_off} // 0);
    $new =~ s/[^\n]*\z//;    # an incomplete last line is read next time
    $self->{sd_off} = ($self->{sd_off} // 0) + length $new;
    while ($new =~ /(\d+)#\d+: setproctitle: "nginx: worker process is sh/g) {
        $self->{sd_pids}{$1} = 1;
    }
    return $self->{sd_pids} // {};
}

# pids of every child of the master (workers old and new, helpers)
sub child_pids {
    my ($self) = @_;
    my @c = $self->{pid} ? _children($self->{pid}) : ();
    return @c;
}

sub _read_file {
    my ($path, $from) = @_;
    my $fh;
    open($fh, '<', $path) or return '';
    binmode $fh;
    seek($fh, $from, 0) if $from;
    local $/;
    my $d = <$fh> // '';
    close $fh;
    return $d;
}

sub _tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

sub _listen_ports {
    my ($conf) = @_;
    my %p;
    while ($conf =~ /^\s*listen\s+([^;]+);/mg) {
        my $a = $1;
        next if $a =~ /\budp\b/ || $a =~ /^unix:/;
        $p{$1} = 1 if $a =~ /^(?:\S*:)?(\d+)(?:\s|$)/;
    }
    my @ports = sort { $a <=> $b } keys %p;
    return @ports;
}

sub _port_accepts {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# start nginx; returns true on success, false (with ->start_error) if not
sub try_run {
    my ($self) = @_;
    my ($conf, @cmd, $pid, $status, $deadline, $pidfile, $conf_path, $err);

    croak "nginx already running" if $self->{running};
    $self->{start_error} = undef;
    $conf = $self->conf_text;
    $conf_path = "$self->{prefix}/nginx.conf";
    _write($conf_path, $conf);
    $pidfile = "$self->{prefix}/nginx.pid";
    unlink $pidfile;
    note_verbose("nginx.conf:\n$conf");

    @cmd = ($self->{binary}, '-p', "$self->{prefix}/", '-c', $conf_path,
        '-e', "$self->{prefix}/error.log");
    if ($self->{valgrind}) {
        unshift @cmd, 'valgrind', '--tool=memcheck', '--error-exitcode=42',
            '--leak-check=full', '--errors-for-leak-kinds=definite',
            '--num-callers=30',
            "--log-file=$self->{prefix}/valgrind.%p.log",
            "--suppressions=" . $self->_valgrind_supp,
            split(' ', $ENV{TEST_NGINX_VALGRIND_OPTS} // '');
    }
    note_verbose("starting: @cmd");

    $pid = fork();
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _close_fds();
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', "$self->{prefix}/stderr.log");
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or do {
            print STDERR "exec $cmd[0]: $!\n";
            _exit(127);
        };
    }
    $self->{starts}++;

    if (!$self->{valgrind}) {
        # the launcher exits once the master daemonized (or on an error)
        waitpid($pid, 0);
        $status = $? >> 8;
        if ($? != 0) {
            $err = "nginx exited with status $status";
        }
    }
    else {
        $self->{child} = $pid;
    }

    $deadline = time + $self->{start_timeout};

    if (!$err && !wait_for(sub {
        return 1 if -s $pidfile;
        if ($self->{valgrind} && waitpid($pid, WNOHANG) == $pid) {
            $err = "nginx (valgrind) exited with status " . ($? >> 8);
            $self->{child} = undef;
            return 1;
        }
        return 0;
    }, $self->{start_timeout}))
    {
        $err = "no pid file after $self->{start_timeout}s";
    }

    if (!$err) {
        my $p = _read_file($pidfile);
        ($self->{pid}) = $p =~ /(\d+)/;
        $err = "bad pid file" unless $self->{pid};
    }

    if (!$err) {
        for my $port (_listen_ports($conf)) {
            next if wait_for(sub { _port_accepts($port) },
                $deadline - time);
            $err = "port $port does not accept connections";
            last;
        }
    }

    $self->{running} = 1 unless $err;

    if (!$err && !$self->single_process) {
        wait_for(sub { $self->worker_pids >= $self->effective_workers },
            $deadline - time)
            or $err = "workers did not start";
    }

    if ($err) {
        $err .= "\n--- error.log (tail):\n"
            . _tail(_read_file("$self->{prefix}/error.log"), 30)
            . "--- stderr:\n"
            . _tail(_read_file("$self->{prefix}/stderr.log"), 30);
        $self->{start_error} = $err;
        $self->_kill_all if $self->{running} || $self->{pid};
        $self->{running} = 0;
        return 0;
    }

    note_verbose("nginx started, master $self->{pid}");
    return 1;
}

sub start_error { $_[0]{start_error} }

# nginx keeps a few allocations for the life of a process and exits
# without freeing them: the environment, and in a worker the connection
# and event arrays of ngx_event_process_init (a static function, three
# frames above ngx_spawn_process in Debian's stripped binary).  Valgrind
# calls them definitely lost.
my $VALGRIND_SUPP = <<'SUPP';
{
   nginx-environment-is-process-lifetime
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
}
{
   nginx-worker-connections-are-process-lifetime
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   obj:*/nginx
   obj:*/nginx
   obj:*/nginx
   fun:ngx_spawn_process
}
{
   nginx-worker-connections-are-process-lifetime-symbols
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:ngx_alloc
   fun:ngx_event_process_init
}
SUPP

sub _valgrind_supp {
    my ($self) = @_;
    my $path = "$self->{prefix}/valgrind.supp";
    _write($path, $VALGRIND_SUPP) unless -f $path;
    return $path;
}

# start nginx or die with the reason and the error log tail
sub run {
    my ($self) = @_;
    $self->try_run or croak "nginx did not start: $self->{start_error}";
    return $self;
}

sub _write {
    my ($path, $data) = @_;
    my $fh;
    open($fh, '>', $path) or croak "write $path: $!";
    binmode $fh;
    print {$fh} $data;
    close $fh;
}

# write a file into the prefix (placeholders filled); returns its path
sub write_file {
    my ($self, $name, $data) = @_;
    my $path = "$self->{prefix}/$name";
    make_path(dirname($path));
    _write($path, $self->_fill($data));
    return $path;
}

sub _kill_all {
    my ($self) = @_;
    my @pids = grep { $_ } ($self->{pid}, $self->child_pids);
    kill 'KILL', @pids if @pids;
    wait_for(sub { !grep { _alive($_) } @pids }, 5);
    if ($self->{child}) {
        waitpid($self->{child}, 0);
        $self->{child} = undef;
    }
    $self->{pid} = undef;
    $self->{running} = 0;
}

# graceful stop (QUIT); TERM and then KILL if nginx does not exit within
# stop_timeout.  A forced stop is recorded as a problem, which fails the
# final check.  Returns true when nginx exited on QUIT.
sub stop {
    my ($self, %opt) = @_;
    my ($pid, @kids, $ok, $timeout);

    return 1 unless $self->{running};
    $pid = $self->{pid};
    @kids = $self->child_pids;
    $timeout = $opt{timeout} // $self->{stop_timeout};

    note_verbose("stopping nginx $pid (QUIT)");
    kill 'QUIT', $pid;
    $ok = wait_for(sub {
        if ($self->{child} && waitpid($self->{child}, WNOHANG) > 0) {
            $self->{child_status} = $?;
            $self->{child} = undef;
        }
        return !_alive($pid) && !grep { _alive($_) } @kids;
    }, $timeout);

    if (!$ok) {
        $self->problem("nginx (pid $pid) did not exit within ${timeout}s"
            . " of QUIT");
        kill 'TERM', $pid;
        wait_for(sub { !_alive($pid) }, 5);
        $self->_kill_all;
        $ok = 0;
    }

    if ($self->{child}) {
        waitpid($self->{child}, 0);
        $self->{child_status} = $?;
        $self->{child} = undef;
    }
    if ($self->{valgrind} && defined $self->{child_status}
        && ($self->{child_status} >> 8) == 42)
    {
        $self->problem("valgrind reported errors (exit status 42), see "
            . "$self->{prefix}/valgrind.*.log");
    }

    $self->{running} = 0;
    $self->{pid} = undef;
    return $ok ? 1 : 0;
}

sub restart {
    my ($self) = @_;
    $self->stop;
    return $self->run;
}

# Write the current configuration and send HUP (what "nginx -s reload"
# does).  Waits until a full set of new workers runs; returns 1, or 0
# when nginx logged [emerg] (a rejected configuration) or the timeout
# passed.  Without a master process (TEST_NGINX_VALGRIND=single) it
# restarts nginx instead.
sub reload {
    my ($self, %opt) = @_;
    my (%old, $conf, $from, $ok, $timeout);

    croak "nginx is not running" unless $self->{running};
    if ($self->single_process) {
        # nginx without a master process does not re-initialise its event
        # module on reconfiguration (no connections afterwards): restart
        Test::More::note('reload without a master: restarting nginx');
        $self->stop;
        return $self->try_run;
    }
    $timeout = $opt{timeout} // tscale(10);
    %old = map { $_ => 1 } $self->worker_pids;
    $conf = $self->conf_text;
    _write("$self->{prefix}/nginx.conf", $conf);
    $from = -s "$self->{prefix}/error.log" // 0;

    note_verbose("reloading nginx $self->{pid}");
    kill 'HUP', $self->{pid};

    $ok = wait_for(sub {
        my $log = _read_file("$self->{prefix}/error.log", $from);
        return -1 if $log =~ /\[emerg\]/;
        # a full set of new workers, and the old ones gone or shutting
        # down (their title changes)
        my @now = $self->worker_pids;
        my @new = grep { !$old{$_} } @now;
        return @new >= $self->{workers} && @new == @now ? 1 : 0;
    }, $timeout);

    return ($ok && $ok > 0) ? 1 : 0;
}

# run "nginx -t" on a configuration in a scratch directory:
#   ($status, $output) = $t->nginx_t(%parts)  (no parts: the current ones)
#   nginx_t(%parts) as a function uses the current instance (or a new one)
sub nginx_t {
    my $self = _is_self($_[0]) ? shift : ($CURRENT // __PACKAGE__->new);
    my (%parts) = @_;
    my ($dir, $conf, @cmd, $out, $status);

    $dir = "$self->{prefix}/nginx-t-" . ++$self->{t_count};
    make_path($dir);
    chmod 0755, $dir;
    $conf = $self->conf_text($dir, %parts);
    _write("$dir/nginx.conf", $conf);

    @cmd = ($self->{binary}, '-t', '-p', "$dir/", '-c', "$dir/nginx.conf",
        '-e', "$dir/error.log");
    $out = _capture(@cmd);
    $status = $? >> 8;
    note_verbose("nginx -t: status $status\n$out");
    return ($status, $out);
}

# In a child about to exec nginx: close every descriptor but 0-2, so that
# nginx does not inherit listening sockets of fake SDKs (Mojo clears their
# close-on-exec flag) or port lock files.
sub _close_fds {
    my $dh;
    opendir($dh, '/proc/self/fd') or return;
    my @fds = grep { /^\d+$/ && $_ > 2 } readdir $dh;
    closedir $dh;
    POSIX::close($_) for @fds;
}

sub _capture {
    my (@cmd) = @_;
    my ($pid, $fh, $out);
    $pid = open($fh, '-|');
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _close_fds();
        open(STDERR, '>&', \*STDOUT);
        open(STDIN, '<', '/dev/null');
        exec(@cmd) or do { print "exec $cmd[0]: $!\n"; _exit(127) };
    }
    local $/;
    $out = <$fh> // '';
    close $fh;
    return $out;
}


# --- logs -------------------------------------------------------------------

sub error_log_path { "$_[0]{prefix}/error.log" }

# remember the current end of error.log: the *_log helpers look only at
# what is written after the mark
sub mark_log {
    my ($self) = @_;
    $self->{log_mark} = -s $self->error_log_path // 0;
    return $self;
}

sub read_error_log {
    my ($self, %opt) = @_;
    return _read_file($self->error_log_path,
        $opt{all} ? 0 : $self->{log_mark});
}

sub _re {
    my ($re) = @_;
    return ref $re eq 'Regexp' ? $re : qr/\Q$re\E/;
}

# number of log lines (after the mark) matching $re
sub log_count {
    my ($self, $re) = @_;
    $re = _re($re);
    return scalar grep { $_ =~ $re } split /\n/, $self->read_error_log;
}

# wait until the log (after the mark) matches; true on success
sub wait_error_log {
    my $self = _is_self($_[0]) ? shift : _current();
    my ($re, $timeout) = @_;
    $re = _re($re);
    return wait_for(sub { $self->read_error_log =~ $re }, $timeout)
        ? 1 : 0;
}

# test: the log (after the mark) matches $re within $timeout seconds
sub error_log_like {
    my $self = _is_self($_[0]) ? shift : _current();
    my ($re, $name, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $re = _re($re);
    my $ok = wait_for(sub { $self->read_error_log =~ $re },
        $timeout // default_timeout());
    return Test::More::ok($ok, $name // "error log matches $re");
}

# test: no log line (after the mark) matches $re
sub no_error_log {
    my $self = _is_self($_[0]) ? shift : _current();
    my ($re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $re = _re($re);
    my @hits = grep { $_ =~ $re } split /\n/, $self->read_error_log;
    my $ok = Test::More::ok(!@hits, $name // "no error log line matches $re");
    Test::More::diag("matching lines:\n" . join("\n", @hits[0 .. ($#hits > 9
        ? 9 : $#hits)])) if @hits;
    return $ok;
}

# lines matching $re are not held against the final check of this instance
sub ignore_log {
    my ($self, @re) = @_;
    push @{ $self->{ignore} }, map { _re($_) } @re;
    return $self;
}

# record a problem that fails the final check
sub problem {
    my ($self, $msg) = @_;
    push @{ $self->{problems} }, $msg;
    Test::More::note("nginx problem: $msg");
}

# return and forget the recorded problems (for tests of the harness)
sub take_problems {
    my ($self) = @_;
    my @p = @{ $self->{problems} };
    $self->{problems} = [];
    return @p;
}

# the offending lines of a log text: [alert]/[crit]/[emerg], sanitizer
# reports, signal exits, valgrind errors; minus lines matching @ignore
sub scan_log_text {
    my ($text, @ignore) = @_;
    my @bad;
    LINE: for my $line (split /\n/, $text // '') {
        next unless grep { $line =~ $_ } @BAD_LOG;
        for my $re (@ignore) {
            next LINE if $line =~ $re;
        }
        push @bad, $line;
    }
    return @bad;
}

# every log file of this instance: error.log, the launcher's stderr,
# valgrind logs
sub log_files {
    my ($self) = @_;
    my @f = ($self->error_log_path, "$self->{prefix}/stderr.log",
        glob("$self->{prefix}/valgrind.*.log"));
    return grep { -e } @f;
}

# problems and offending log lines of this instance
sub check_logs {
    my ($self) = @_;
    my @bad = @{ $self->{problems} };
    for my $f ($self->log_files) {
        push @bad, map { "$f: $_" }
            scan_log_text(_read_file($f), @{ $self->{ignore} });
    }
    return @bad;
}


# --- HTTP and panels --------------------------------------------------------

# $t->http_get($path, %headers) -> { code, headers, body, raw }
sub http_get {
    my ($self, $path, %h) = @_;
    return http_request($self->port(0), 'GET', $path, headers => \%h);
}

sub http {
    my ($self, $method, $path, %opt) = @_;
    return http_request($self->port($opt{port_n} // 0), $method, $path,
        %opt);
}

# $t->panel($path, %opt): panel_connect to ws://127.0.0.1:PORT_0$path
sub panel {
    my ($self, $path, %opt) = @_;
    return panel_connect($self->ws_url($path, $opt{port_n}), %opt);
}

sub panel_connect {
    my ($url, %opt) = @_;
    my ($p, $res) = Test::AMonitor::Panel->open($url, %opt);
    return $p if $p;
    croak sprintf("panel handshake to %s refused: %s %s%s", $url,
        $res->{code} // 'no response', $res->{message} // '',
        ($res->{error} ? " ($res->{error})" : '')
        . (length($res->{body} // '') ? "\n$res->{body}" : ''));
}

sub panel_try_connect {
    my ($url, %opt) = @_;
    return Test::AMonitor::Panel->open($url, %opt);
}

# the HTTP status of a panel handshake (101 when it succeeded; the
# connection is then closed); in list context also the response hash
sub panel_handshake_status {
    my ($url, %opt) = @_;
    my ($p, $res) = Test::AMonitor::Panel->open($url, %opt);
    $p->close(1000) if $p;
    return wantarray ? ($res->{code}, $res) : $res->{code};
}

# Open panels in batches of "batch" until each of "workers" workers has
# one.  Which worker a panel is on shows in the event that each worker's
# connection to the fake SDK sends.  Returns ({ conn_id => [panels] },
# [every panel opened]).
sub panels_per_worker {
    my ($t, $sdk, %o) = @_;
    my $workers = $o{workers} // $t->workers;
    my $batch = $o{batch} // 4;
    my $target = $sdk->target_id;
    my (%by_worker, @all);

    for my $try (1 .. ($o{tries} // 6)) {
        my @new = map { $t->panel($o{path} // '/ws/panel',
            name => "w$try-$_") } 1 .. $batch;
        push @all, @new;
        for my $cid ($sdk->conn_ids) {
            $sdk->send_to($cid, { msg_id => "which-$try-$cid",
                type => 'event', target_id => $target,
                payload => { target_id => $target, event_name => 'which' } });
        }
        for my $q (@new) {
            my $m = $q->recv_until(
                sub { $_[0]{data} =~ /"which-$try-(\d+)"/ }, 5) or next;
            my ($w) = $m->{data} =~ /"which-$try-(\d+)"/;
            push @{ $by_worker{$w} }, $q;
        }
        last if keys %by_worker == $workers;
    }

    return (\%by_worker, \@all);
}

sub fake_sdk {
    my (%opt) = @_;
    my $sdk = Test::AMonitor::FakeSDK->new(%opt);
    push @SDKS, $sdk;
    weaken $SDKS[-1];
    return $sdk;
}


# --- the final check --------------------------------------------------------

sub _in_subtest {
    my $hub = eval { Test2::API::test2_stack()->top };
    return $hub && $hub->isa('Test2::Hub::Subtest') ? 1 : 0;
}

# stop everything, then one test over all logs of the file
sub _final_check {
    return if $FINAL_DONE || $$ != $MAIN_PID;
    $FINAL_DONE = 1;

    my @live = grep { defined } @INSTANCES;
    $_->stop for grep { $_->{running} } @live;
    my @inst = (@RETIRED, grep { defined } @INSTANCES);
    return unless grep { $_->{starts} } @inst;

    for my $sdk (grep { defined } @SDKS) {
        eval { $sdk->stop };
    }

    my @bad;
    for my $t (grep { $_->{starts} } @inst) {
        push @bad, $t->check_logs;
    }

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(!@bad, 'nginx logs are clean: no alert/crit/emerg, '
        . 'sanitizer report, signal exit or forced stop');
    if (@bad) {
        my @show = @bad > 30 ? (@bad[0 .. 29], '...') : @bad;
        Test::More::diag(join "\n", @show);
    }
    _report_logs(@inst);
}

sub _report_logs {
    my (@inst) = @_;
    for my $t (@inst) {
        if ($ENV{TEST_AMON_CATLOG}) {
            for my $f ($t->log_files) {
                Test::More::diag("--- $f\n" . _read_file($f));
            }
        }
        if ($t->{leave}) {
            Test::More::diag("nginx prefix kept: $t->{prefix}");
        }
    }
}

{
    # every done_testing() of the file runs the final check first
    no warnings 'redefine';
    my $orig = \&Test::Builder::done_testing;
    *Test::Builder::done_testing = sub {
        _final_check() unless _in_subtest();
        goto &$orig;
    };
}

$SIG{INT}  = sub { exit 130 };
$SIG{TERM} = sub { exit 143 };

END {
    if ($$ == $MAIN_PID) {
        my $status = $?;
        if (!$FINAL_DONE) {
            # the file died or had a numeric plan: still stop everything
            # and tell what the logs hold
            $FINAL_DONE = 1;
            for my $t (grep { defined } @INSTANCES) {
                eval { $t->stop };
            }
            my @inst = (@RETIRED, grep { defined } @INSTANCES);
            for my $t (grep { $_->{starts} } @inst) {
                my @bad = $t->check_logs;
                Test::More::diag("nginx log problems:\n" . join "\n", @bad)
                    if @bad;
            }
            _report_logs(@inst);
        }
        $? = $status;
    }
}

# An instance that goes out of scope is stopped; its logs are still
# checked at the end, through a record of what the check needs.
sub DESTROY {
    my ($self) = @_;
    return if $self->{retired} || $$ != ($self->{owner} // 0);
    local ($@, $?);
    eval { $self->stop if $self->{running} };
    return unless $self->{starts} && !$FINAL_DONE;
    push @RETIRED, bless({ retired => 1, running => 0,
        map { $_ => $self->{$_} } qw(prefix ignore problems starts leave)
    }, ref $self);
}


# --- data-driven blocks -----------------------------------------------------

# parse Test::Nginx::Socket-style blocks from text
sub parse_blocks {
    my ($text) = @_;
    my (@blocks, $b, $sec);

    for my $line (split /\n/, $text) {
        if ($line =~ /^===\s*(.*?)\s*$/) {
            push @blocks, $b if $b;
            $b = { name => $1, sections => {}, order => [] };
            $sec = undef;
            next;
        }
        next unless $b;
        if ($line =~ /^---\s+(\w+)\s*(.*?)\s*$/) {
            my ($name, $rest) = ($1, $2);
            $sec = { name => $name, lines => [], filters => [] };
            if ($rest =~ s/^:\s*//) {
                $sec->{inline} = $rest;
            }
            elsif (length $rest) {
                $sec->{filters} = [split ' ', $rest];
            }
            $b->{sections}{$name} = $sec;
            push @{ $b->{order} }, $name;
            next;
        }
        push @{ $sec->{lines} }, $line if $sec;
    }
    push @blocks, $b if $b;

    for my $blk (@blocks) {
        for my $s (values %{ $blk->{sections} }) {
            my $v;
            if (defined $s->{inline}) {
                $v = $s->{inline};
            }
            else {
                my @l = @{ $s->{lines} };
                pop @l while @l && $l[-1] =~ /^\s*$/;
                $v = @l ? join("\n", @l) . "\n" : '';
            }
            for my $f (@{ $s->{filters} }) {
                if ($f eq 'chomp') {
                    chomp $v;
                }
                elsif ($f eq 'eval') {
                    my $r = eval $v;
                    die "--- $s->{name} eval: $@" if $@;
                    $v = $r;
                }
                else {
                    die "unknown filter '$f' in --- $s->{name}\n";
                }
            }
            $s->{value} = $v;
        }
    }
    return @blocks;
}

sub _sec {
    my ($b, $n) = @_;
    return $b->{sections}{$n} ? $b->{sections}{$n}{value} : undef;
}

sub _has { exists $_[0]{sections}{ $_[1] } }

sub _lines {
    my ($v) = @_;
    return () unless defined $v;
    return @$v if ref $v eq 'ARRAY';
    return grep { length } map { s/\r\z//r } split /\n/, $v;
}

# run_tests(%opt): run the __DATA__ blocks of the test script, one nginx
# (re)start per block, then done_testing().
#   opt: module => 0|1, workers => N, data => $text (instead of __DATA__),
#        done => 0 (do not call done_testing)
sub run_tests {
    my (%opt) = @_;
    my ($text, @blocks, $t);

    $text = $opt{data};
    if (!defined $text) {
        no strict 'refs';
        my $fh = \*{'main::DATA'};
        local $/;
        $text = <$fh>;
        croak "run_tests: the test script has no __DATA__" unless defined $text;
    }
    @blocks = parse_blocks($text);
    croak "run_tests: no blocks found" unless @blocks;

    $t = __PACKAGE__->new(module => $opt{module} // 1,
        workers => $opt{workers} // 1);

    my @only = grep { _has($_, 'ONLY') } @blocks;
    @blocks = @only if @only;

    for my $b (@blocks) {
        if (_has($b, 'SKIP') || _has($b, 'skip')) {
            Test::More::subtest($b->{name} => sub {
                Test::More::plan(skip_all => _sec($b, 'skip')
                    // _sec($b, 'SKIP') // 'skipped');
            });
            next;
        }
        Test::More::subtest($b->{name} => sub {
            _run_block($t, $b, \%opt);
        });
    }

    Test::More::done_testing() unless defined $opt{done} && !$opt{done};
    return $t;
}

sub _parse_sdk_line {
    my ($t, $line) = @_;
    my %o;
    for my $kv (split ' ', $line) {
        my ($k, $v) = split /=/, $kv, 2;
        $v //= 1;
        $v =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        $o{$k} = $v;
    }
    if (defined $o{port}) {
        $o{port} = $t->port($1) if $o{port} =~ /^(?:PORT_)?(\d{1,3})$/;
        $o{port} = $t->_fill($o{port});
    }
    if (defined $o{actions}) {
        my %a;
        for my $spec (split /,/, $o{actions}) {
            my ($name, $ok, $msg) = split /:/, $spec, 3;
            $a{$name} = [$ok, $msg // ($ok ? 'ok' : 'failed')];
        }
        $o{actions} = \%a;
    }
    return %o;
}

sub _run_block {
    my ($t, $b, $opt) = @_;
    my ($timeout, @sdks, %want);

    # placeholders work in every section (ports in messages, paths, ...)
    for my $sec (values %{ $b->{sections} }) {
        $sec->{value} = $t->_fill($sec->{value})
            if defined $sec->{value} && !ref $sec->{value};
    }

    $timeout = tscale(_sec($b, 'timeout') // 5);
    $t->workers(_sec($b, 'workers') // $opt->{workers} // 1);
    $t->module(_has($b, 'no_module') ? 0 : ($opt->{module} // 1));
    $t->write_config(
        main_config   => _sec($b, 'main_config') // '',
        events_config => _sec($b, 'events_config') // '',
        http_config   => _sec($b, 'http_config') // '',
        config        => _sec($b, 'config') // '',
    );

    # configuration checks: nginx -t only
    if (_has($b, 'nginx_t_fails') || _has($b, 'nginx_t_ok')
        || _has($b, 'nginx_t_like'))
    {
        my ($st, $out) = $t->nginx_t;
        if (_has($b, 'nginx_t_ok')) {
            Test::More::is($st, 0, 'nginx -t succeeds')
                or Test::More::diag($out);
        }
        else {
            Test::More::isnt($st, 0, 'nginx -t fails')
                or Test::More::diag($out);
        }
        for my $re (_lines(_sec($b, 'nginx_t_like'))) {
            Test::More::like($out, qr/$re/, "nginx -t output matches /$re/");
        }
        return;
    }

    for my $line (_lines(_sec($b, 'fake_sdk'))) {
        my %o = _parse_sdk_line($t, $line);
        my $want = delete $o{connections}
            // ($t->{module} ? $t->effective_workers : 0);
        $want = 0 if defined $o{wait} && !$o{wait};
        delete $o{wait};
        my $sdk = fake_sdk(%o);
        push @sdks, $sdk;
        $want{$sdk} = $want;
    }

    $t->mark_log;
    if (!$t->try_run) {
        Test::More::fail('nginx starts');
        Test::More::diag($t->start_error);
        $_->stop for @sdks;
        return;
    }

    for my $sdk (@sdks) {
        next unless $want{$sdk};
        Test::More::ok($sdk->wait_connections($want{$sdk}, $timeout),
            "fake SDK " . $sdk->target_id . " has $want{$sdk} agent"
            . " connection(s)")
            or Test::More::diag("it has " . $sdk->connections);
    }

    _block_request($t, $b, $timeout) if _has($b, 'request')
        || _has($b, 'raw_request');
    _block_ws($t, $b, $timeout) if _has($b, 'ws_request');

    if (_has($b, 'sdk_actions_like')) {
        my $i = 0;
        for my $re (_lines(_sec($b, 'sdk_actions_like'))) {
            my $hit = wait_for(sub {
                my @a = map { $_->actions_raw } @sdks;
                while ($i < @a) {
                    return 1 if $a[$i++] =~ /$re/;
                }
                return 0;
            }, $timeout);
            Test::More::ok($hit, "fake SDK received an action matching /$re/")
                or Test::More::diag("actions: " . join("\n",
                    map { $_->actions_raw } @sdks));
        }
    }

    sleep_loop(_sec($b, 'wait')) if _has($b, 'wait');

    if (_has($b, 'sdk_actions')) {
        sleep_loop(0.3);
        my $n = 0;
        $n += scalar($_->actions) for @sdks;
        Test::More::is($n, _sec($b, 'sdk_actions') + 0,
            'number of actions the fake SDKs received');
    }

    $t->stop;
    $_->stop for @sdks;

    my $log = $t->read_error_log;
    for my $s (_lines(_sec($b, 'error_log'))) {
        Test::More::ok(index($log, $s) >= 0, "error log has \"$s\"");
    }
    for my $re (_lines(_sec($b, 'error_log_like'))) {
        Test::More::like($log, qr/$re/, "error log matches /$re/");
    }
    for my $s (_lines(_sec($b, 'no_error_log'))) {
        my @hits = grep { index($_, $s) >= 0 } split /\n/, $log;
        Test::More::ok(!@hits, "error log has no \"$s\"")
            or Test::More::diag(join "\n", @hits[0 .. ($#hits > 9 ? 9
                : $#hits)]);
    }
    for my $re (_lines(_sec($b, 'no_error_log_like'))) {
        Test::More::unlike($log, qr/$re/, "error log does not match /$re/");
    }
}

sub _block_request {
    my ($t, $b, $timeout) = @_;
    my ($res, $raw);

    if (_has($b, 'raw_request')) {
        $raw = _sec($b, 'raw_request');
    }
    else {
        my ($line, @body) = split /\n/, _sec($b, 'request');
        my ($method, $uri, $ver) = split ' ', $line;
        my $body = @body ? join("\n", @body) : '';
        $raw = "$method $uri " . ($ver // 'HTTP/1.1') . "\r\n"
            . "Host: localhost\r\nConnection: close\r\n";
        for my $h (_lines(_sec($b, 'more_headers'))) {
            $raw .= "$h\r\n";
        }
        $raw .= "Content-Length: " . length($body) . "\r\n" if length $body;
        $raw .= "\r\n$body";
    }

    $res = parse_http_response(raw_http($t->port(0), $raw, $timeout));

    if (defined(my $c = _sec($b, 'response_code') // _sec($b, 'error_code'))) {
        Test::More::is($res->{code}, $c + 0, "response status is $c")
            or Test::More::diag($res->{raw});
    }
    if (defined(my $body = _sec($b, 'response_body'))) {
        Test::More::is($res->{body}, $body, 'response body');
    }
    if (defined(my $re = _sec($b, 'response_body_like'))) {
        chomp(my $r = $re);
        Test::More::like($res->{body}, qr/$r/s, 'response body matches');
    }
    for my $h (_lines(_sec($b, 'response_headers'))) {
        my ($k, $v) = $h =~ /^([^:]+):\s*(.*)$/ or next;
        Test::More::is($res->{headers}{ lc $k }, $v, "header $k");
    }
    for my $h (_lines(_sec($b, 'response_headers_like'))) {
        my ($k, $v) = $h =~ /^([^:]+):\s*(.*)$/ or next;
        Test::More::like($res->{headers}{ lc $k } // '', qr/$v/,
            "header $k matches /$v/");
    }
    return $res;
}

sub _send_line {
    my ($p, $line) = @_;
    if ($line =~ /^hex:\s*([0-9a-fA-F\s]*)$/) {
        (my $hex = $1) =~ s/\s+//g;
        $p->send_binary(pack('H*', $hex));
    }
    else {
        $p->send_text($line);
    }
}

sub _expect_msg {
    my ($p, $re, $timeout) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $m = $p->recv_until(sub { $_[0]{data} =~ /$re/ }, $timeout);
    Test::More::ok($m, "panel received a message matching /$re/")
        or Test::More::diag("received:\n" . join("\n",
            map { "$_->{type}: $_->{data}" } $p->messages)
            . ($p->is_open ? '' : "\n(closed: " . ($p->close_code // '?')
                . ")"));
    return $m;
}

sub _block_ws {
    my ($t, $b, $timeout) = @_;
    my (%h, $p, $res, $url);

    for my $l (_lines(_sec($b, 'ws_headers'))) {
        my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
        $h{$k} = $v;
    }
    $url = $t->ws_url(_sec($b, 'ws_request') =~ s/\s+\z//r);
    ($p, $res) = panel_try_connect($url, headers => \%h,
        timeout => $timeout);

    if (defined(my $want = _sec($b, 'ws_handshake_status'))) {
        Test::More::is($res->{code}, $want + 0,
            "panel handshake answered $want")
            or Test::More::diag("response: " . ($res->{code} // 'none')
                . " " . ($res->{body} // ''));
        if (!$p) {
            for my $hl (_lines(_sec($b, 'ws_response_headers_like'))) {
                my ($k, $v) = $hl =~ /^([^:]+):\s*(.*)$/ or next;
                Test::More::like($res->{headers}{ lc $k } // '', qr/$v/,
                    "handshake header $k matches /$v/");
            }
            return;
        }
    }
    elsif (!$p) {
        Test::More::fail('panel handshake succeeds');
        Test::More::diag("response: " . ($res->{code} // 'none') . " "
            . ($res->{error} // '') . " " . ($res->{body} // ''));
        return;
    }

    _send_line($p, $_) for _lines(_sec($b, 'ws_send'));

    for my $re (_lines(_sec($b, 'ws_expect_like'))) {
        _expect_msg($p, $re, $timeout);
    }

    # interleaved script: "> text" sends, "< regex" expects, "wait N",
    # "close CODE" closes, "ping" pings
    for my $l (_lines(_sec($b, 'ws_script'))) {
        if ($l =~ /^>\s?(.*)$/) {
            _send_line($p, $1);
        }
        elsif ($l =~ /^<\s?(.*)$/) {
            _expect_msg($p, $1, $timeout);
        }
        elsif ($l =~ /^wait\s+([\d.]+)$/) {
            sleep_loop($1);
        }
        elsif ($l =~ /^close(?:\s+(\d+))?$/) {
            $p->close($1 // 1000);
        }
        elsif ($l =~ /^ping$/) {
            Test::More::ok($p->ping(undef, $timeout), 'pong received');
        }
        else {
            Test::More::fail("ws_script: cannot parse \"$l\"");
        }
    }

    if (_has($b, 'ws_expect_close')) {
        my $want = _sec($b, 'ws_expect_close') + 0;
        my $code = $p->wait_closed($timeout);
        Test::More::is($code, $want, "server closed the panel with $want");
    }
    elsif ($p->is_open) {
        $p->close(1000);
    }
}


1;

__END__

=head1 NAME

Test::AMonitor - nginx + WebSocket test harness for ngx_http_amonitor_module

=head1 SYNOPSIS

Data-driven:

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::AMonitor;

    run_tests();

    __DATA__

    === TEST 1: panel handshake succeeds
    --- config
        location /panel { amonitor_panel on; }
    --- ws_request: /panel
    --- ws_send
    {"msg_id":"m1","type":"action","target_id":"nope","payload":{"action":"restart"}}
    --- ws_expect_like
    "type":"error".*"code":"UNKNOWN_TARGET"
    --- no_error_log
    [error]

Programmatic:

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::AMonitor;

    my $t = Test::AMonitor->new(workers => 4);
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0.2);
    $t->write_config(
        http_config => 'amonitor_target a ws://127.0.0.1:%%PORT_1%%/;',
        config      => 'location /ws/panel { amonitor_panel on; }',
    )->run;
    ok $sdk->wait_connections(4), 'every worker dialed the SDK';
    my $p = $t->panel('/ws/panel');
    ok $p->recv_type('heartbeat'), 'heartbeat reaches the panel';
    done_testing();

=head1 DESCRIPTION

C<use Test::AMonitor> exports Test::More's functions and the helpers
below; do not C<use Test::More> after it.  End every file with
C<done_testing()> (C<run_tests> calls it): before the plan is written,
all nginx instances are stopped (QUIT) and one more test checks their logs
(see L</"The final check">).  A numeric plan (C<plan tests =E<gt> N>)
does not get that test; use C<done_testing>.

=head1 ENVIRONMENT

=over

=item TEST_NGINX_BINARY

nginx to run (default F</usr/sbin/nginx>).

=item TEST_AMON_MODULE

module to load (default F<build/nginx/ngx_http_amonitor_module.so>).

=item TEST_AMON_LEAVE

keep the temporary prefix and print its path.

=item TEST_AMON_CATLOG

print every log file of every instance at the end.

=item TEST_AMON_VERBOSE

print configs, commands and WebSocket traffic.

=item TEST_NGINX_VALGRIND

run nginx under valgrind: C<daemon off;>, the master and its forked
workers under valgrind, one log per process; errors and definite leaks
fail the final check.  C<TEST_NGINX_VALGRIND=single> runs one process
instead (C<master_process off;>: C<workers> has no effect, C<reload>
restarts).  Extra valgrind options: TEST_NGINX_VALGRIND_OPTS.

=item TEST_AMON_TIMEOUT_SCALE

multiply default timeouts (valgrind: 8, TEST_AMON_SANITIZER: 2).

=back

=head1 NGINX CONTROL

=over

=item Test::AMonitor->new(%opt)

A fresh temporary prefix.  Options: C<module> (1; 0 = no C<load_module>),
C<workers> (1), C<worker_connections> (1024), C<log_level> (C<debug> when
the binary has it, else C<info>), C<binary>, C<module_path>,
C<valgrind>, C<start_timeout>, C<stop_timeout> (10 s).

=item $t->port($n)

The port of C<%%PORT_n%%>: a free port, locked with flock on
F</tmp/amon-test-ports/PORT.lock> for the life of the process.
C<free_port()> gives another one outside any instance.

=item $t->write_config(%parts)

C<main_config>, C<events_config>, C<http_config>, C<config> (inside
C<server { listen 127.0.0.1:%%PORT_0%%; ... }>), C<server =E<gt> 0> (no
server block), or C<conf> (everything after the harness's own lines).
The harness writes C<load_module>, C<daemon>, C<master_process>,
C<worker_processes>, C<error_log PREFIX/error.log debug>, C<pid>,
C<events>, and per-prefix temp paths and access log.  Placeholders:
C<%%PORT_n%%>, C<%%PREFIX%%>, C<%%REPO%%>, C<%%TESTDIR%%>.  Returns $t.

=item $t->conf_text

The nginx.conf that C<run> writes.

=item $t->run / $t->try_run / $t->start_error

Start nginx (C<-p PREFIX -c nginx.conf -e error.log>) and wait for the
pid file, every C<listen> port to accept and all workers to run.  C<run>
dies on failure with the error log tail; C<try_run> returns false.

=item $t->stop(timeout => S)

QUIT and wait; TERM and KILL after the timeout, recorded as a problem
that fails the final check.  Returns 1 on a clean stop.

=item $t->restart

=item $t->reload(timeout => S)

Rewrite nginx.conf from the current parts, send HUP (as C<nginx -s
reload> does), wait for a full set of new workers.  Returns 0 when nginx
logged C<[emerg]> (use C<ignore_log> for that test) or on timeout.
Without a master process (C<TEST_NGINX_VALGRIND=single>) it restarts
nginx instead.

=item $t->nginx_t(%parts) / nginx_t(%parts)

C<nginx -t> on a configuration (the current parts when none are given)
in a scratch directory; returns C<($exit_status, $output)>.  Its log is
not part of the final check.

=item $t->master_pid, $t->worker_pids, $t->child_pids, $t->is_running,
$t->prefix, $t->valgrind, $t->single_process, $t->effective_workers,
$t->workers($n), $t->module($on)

=item $t->write_file($name, $text)

Write a file into the prefix (placeholders filled); returns its path.

=item $t->url($path, $n), $t->ws_url($path, $n)

C<http://127.0.0.1:PORT_n$path> and C<ws://...>.

=item $t->http_get($path, %headers), $t->http($method, $path, headers =>
{}, body => '')

HTTP/1.1 request with C<Connection: close>; returns C<{ code, headers
(lower-case names), body, raw }>.

=item $t->panel($path, %opt)

C<panel_connect($t-E<gt>ws_url($path), %opt)>.

=back

=head1 LOGS

=over

=item $t->mark_log

The log helpers look only at lines written after the mark (initially
the whole log; C<run_tests> marks before each block).

=item $t->read_error_log(all => 1), $t->error_log_path, $t->log_count($re)

=item error_log_like($re, $name, $timeout), no_error_log($re, $name)

Tests on the current instance's log (also as methods).  C<$re> is a
Regexp or a literal string.  C<error_log_like> waits up to C<$timeout>.

=item wait_error_log($re, $timeout)

Returns true once the log matches.

=item $t->ignore_log($re, ...)

Lines matching are not held against the final check (e.g. an expected
C<[emerg]> on a reload with a bad configuration).

=item scan_log_text($text, @ignore)

The offending lines of a text (used by the final check).

=back

=head2 The final check

One test per file, run by C<done_testing>: every instance is stopped,
then its F<error.log>, the launcher's stderr and any valgrind logs must
have no C<[alert]>, C<[crit]>, C<[emerg]>, C<ERROR: AddressSanitizer>,
C<ERROR: LeakSanitizer>, C<runtime error:>, C<exited on signal>,
valgrind C<ERROR SUMMARY: N> (NE<gt>0), and no stop may have needed
TERM/KILL.

=head1 PANELS

=over

=item panel_connect($url, headers => {}, timeout => 5, protocols => [])

A connected L<Test::AMonitor::Panel>, or dies with the HTTP status and
body.

=item panel_try_connect($url, %opt)

C<($panel_or_undef, $res)>, C<$res = { code, message, headers, body,
error }>.

=item panel_handshake_status($url, %opt)

The handshake's HTTP status (101 on success; the panel is then closed).

=item Panel methods

C<send_text($s)>, C<send_binary($b)>, C<send_json($ref)>,
C<send_frame($fin, $rsv1, $rsv2, $rsv3, $opcode, $payload)>,
C<flush>, C<recv($timeout)> (C<{ type =E<gt> 'text'|'binary', data,
json }> or undef), C<recv_json($timeout)>, C<recv_until(sub { ... },
$timeout)>, C<recv_type($type, timeout =E<gt> S, field =E<gt> value ...)>
(fields of the envelope or its payload), C<messages>, C<pending>,
C<clear>, C<ping($payload, $timeout)> (true when the pong came),
C<pings_received>, C<close($code, $reason)>, C<drop> (TCP close),
C<wait_closed($timeout)>, C<close_code> (the code of the server's Close
frame, 1006 if none), C<close_reason>, C<is_open>, C<pause> / C<resume>
(stop/start reading: a slow panel).

=back

=head1 FAKE SDK

=over

=item fake_sdk(%opt)

A L<Test::AMonitor::FakeSDK>: WebSocket server on
C<ws://127.0.0.1:PORT/> (any path).  Options: C<port> (default: a free
one), C<target_id> ('demo-target'), C<heartbeat_interval> (5 s; 0: only
the heartbeat on open), C<token> (require C<Authorization: Bearer
TOKEN>, else close 4401), C<actions> (C<{ name =E<gt> [success, message]
}>; C<restart> defaults to C<[1,'ok']>, others to C<[0, "unsupported
action: NAME"]>), C<ack_delay>, C<no_ack>, C<on_action> (C<sub ($sdk,
$env, $conn) { return ($ok, $msg) or () }>), C<on_message>,
C<register_url> (send a C<register> on open), C<metadata>, C<metrics>,
C<status>.

Heartbeats: C<{"msg_id","type":"heartbeat","target_id","timestamp",
"payload":{"target_id","status":"up","metrics":{...,"seq":"N"}}}>.
Acks: C<{"msg_id":NEW,"type":"action_ack",...,"payload":{"action_msg_id",
"success","message"}}> (C<trace_id> copied).

=item SDK methods

C<port>, C<url>, C<target_id>, C<emit_event($name, $data)> (returns the
msg_id), C<heartbeat>, C<send_all($text_or_ref)>,
C<send_all_binary($bytes)>, C<actions> (action envelopes received,
decoded), C<actions_raw> (the same as received),
C<executed($msg_id)>, C<wait_actions($n, $timeout)>, C<acks>,
C<received>, C<handshakes> (C<{ path, headers }>), C<rejected>,
C<conn_ids>, C<send_to($id, $text_or_ref)>, C<send_binary_to($id,
$bytes)>, C<send_frames(@frames)>, C<send_frames_to($id, @frames)>
(frames C<[fin, rsv1, rsv2, rsv3, opcode, payload]>),
C<close_conn($id, $code)> (TCP close when C<$code> is undef),
C<closes> (C<{ conn, code, reason }> per ended connection),
C<controller($id)>,
C<accepted>, C<heartbeats>, C<connections>, C<wait_connections($n,
$timeout)>, C<stop> (refuse new connections, close open ones with 1001),
C<start>, C<drop_all> (TCP close), C<close_all($code)>, C<pause_accept>
/ C<resume_accept>, C<set(%opt)>.

=item panels_per_worker($t, $sdk, workers => N, batch => 4, tries => 6, path => '/ws/panel')

Opens panels in batches until each of N workers has one, telling them
apart by an event that each worker's connection to C<$sdk> sends.
Returns C<({ conn_id =E<gt> [panels] }, [all panels])>.

=back

=head1 RAW TRAFFIC

C<raw_connect($port, rcvbuf =E<gt>, sndbuf =E<gt>, timeout =E<gt>)>;
C<raw_ws_connect($port, $path, %headers)> returns C<($sock, $response)>
(sock undef unless 101 with the right accept key; a header value undef
removes it; C<-rcvbuf>, C<-sndbuf>, C<-timeout>, C<-method>,
C<-version>, C<-key> are options); C<slow_panel($port, $path, %headers)>
(tiny receive buffer, for a panel that never reads);
C<ws_frame(opcode =E<gt>, payload =E<gt>, fin =E<gt> 1, mask =E<gt> 1,
rsv =E<gt> 0, len_form =E<gt> 'min'|'7'|'16'|'64', len =E<gt>,
mask_key =E<gt>, close_code =E<gt>)>; C<raw_send($sock, $bytes,
$timeout)>; C<raw_read($sock, $n, $timeout)>; C<raw_read_frame($sock,
$timeout)> returns C<{ fin, rsv, opcode, masked, payload, length,
close_code, close_reason }>, C<{ eof =E<gt> 1 }> or undef (timeout);
C<raw_eof($sock)>; C<raw_http($port, $text, $timeout)>;
C<http_request($port, $method, $uri, headers =E<gt>, body =E<gt>)>;
C<parse_http_response($raw)>; C<ws_accept_key($key)>.

=head1 UTILITIES

C<wait_for(sub { ... }, $timeout)> (spins the event loop; returns the
true value or undef), C<sleep_loop($s)>, C<free_port()>, C<uuid4()>,
C<encode_json>, C<decode_json>, C<try_decode_json>, C<json_text> (JSON
without Mojo's "\/" escapes, as the original tools write it),
C<now_ms()>,
C<tscale($s)>, C<default_timeout()>, C<current_nginx()>.

=head1 DATA SECTIONS

C<=== TEST n: name> starts a block.  C<--- name: value> (inline) or
C<--- name> followed by lines; filters C<chomp> and C<eval> may follow the
name.  Each block (re)starts nginx in the file's prefix, runs, stops
nginx, then checks the log written during the block.

C<main_config>, C<events_config>, C<http_config>, C<config>, C<workers>,
C<no_module>, C<timeout> (per wait, default 5),
C<fake_sdk> (one SDK per line: C<port=PORT_1 target_id=a token=s
heartbeat_interval=0.2 actions=restart:1:ok,stop:0:no ack_delay=0.5
no_ack=1 connections=N wait=0>; before the requests the harness waits
until each SDK has C<connections> agent connections, default: the
number of workers when the module is loaded),
C<request> (C<METHOD URI>, more lines are the body), C<raw_request>,
C<more_headers>, C<response_code>, C<response_body>,
C<response_body_like>, C<response_headers>, C<response_headers_like>,
C<ws_request> (path), C<ws_headers>, C<ws_handshake_status>,
C<ws_send> (one message per line; C<hex: 0a0b> sends binary),
C<ws_expect_like> (regexes in order), C<ws_script> (C<E<gt> msg>,
C<E<lt> regex>, C<wait S>, C<close CODE>, C<ping>), C<ws_expect_close>,
C<sdk_actions_like>, C<sdk_actions> (count), C<wait>,
C<nginx_t_fails>, C<nginx_t_ok>, C<nginx_t_like> (regexes),
C<error_log>, C<no_error_log> (literal lines), C<error_log_like>,
C<no_error_log_like> (regexes), C<ONLY>, C<SKIP>.

=cut
