package Test::AMonitor::Nginx;

# Process control of the harness, in the spirit of Test::Nginx::Util: one
# object per nginx instance, run in a temporary prefix (-p DIR -c
# nginx.conf -e error.log) with the module loaded.  It writes nginx.conf
# from parts and %%PORT_n%% placeholders (lock-held ports), starts nginx
# and waits for its pid file, listeners and workers, reloads, stops and
# runs "nginx -t".  The log checks it inherits live in
# Test::AMonitor::Log; the reference is docs/testing.md.

use strict;
use warnings;

use parent 'Test::AMonitor::Log';

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use FindBin;
use POSIX qw(:sys_wait_h _exit);
use Scalar::Util qw(blessed weaken);
use Test::More ();
use Time::HiRes qw(time);

use Test::AMonitor::Panel qw(panel_connect);
use Test::AMonitor::Process qw(alive cmdline children close_fds
    capture read_file write_file_raw tail listen_ports port_accepts
    valgrind_argv);
use Test::AMonitor::Raw qw(http_request);
use Test::AMonitor::Util qw(wait_for free_port note_verbose tscale);

our $REPO = abs_path(dirname(__FILE__) . '/../../../..');
our $MODULE_SO = 'ngx_http_amonitor_module.so';

my @INSTANCES;    # every instance made in this file (weak refs)
my @RETIRED;      # what the final check needs of instances already gone
my $CURRENT;      # the instance the function-style helpers use
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
        panel_snapshot => $opt{panel_snapshot} // 0,
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

# the last instance made (the one nginx_t, error_log_like, ... use when
# called as functions)
sub current { $CURRENT }

# every instance whose logs the final check reads: those gone out of
# scope (as records) and those still alive
sub all_instances {
    my @all = (@RETIRED, grep { defined } @INSTANCES);
    return @all;
}

# the instances still alive
sub live_instances {
    my @live = grep { defined } @INSTANCES;
    return @live;
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

# fill the placeholders %%PORT_n%%, %%PREFIX%%, %%REPO%%, %%TESTDIR%%
sub fill {
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
            # suites written before the snapshot existed expect a new
            # panel to hear live traffic only; panel_snapshot => 1 keeps
            # the module's default (on)
            . ($self->{module} && !$self->{panel_snapshot}
                ? "    amonitor_panel_snapshot off;\n" : '')
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

    return $self->fill(join("\n", @h) . $body);
}


# --- processes --------------------------------------------------------------

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
        @w = grep { !$gone->{$_} } children($self->{pid});
    }
    else {
        @w = grep { cmdline($_) =~ /worker process$/ }
            children($self->{pid});
    }
    return @w;
}

sub _shutting_down {
    my ($self) = @_;
    my $new = read_file($self->error_log_path, $self->{sd_off} // 0);
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
    my @c = $self->{pid} ? children($self->{pid}) : ();
    return @c;
}

# start nginx; returns true on success, false (with ->start_error) if not
sub try_run {
    my ($self) = @_;
    my ($conf, @cmd, $pid, $status, $deadline, $pidfile, $conf_path, $err);

    croak "nginx already running" if $self->{running};
    $self->{start_error} = undef;
    $conf = $self->conf_text;
    $conf_path = "$self->{prefix}/nginx.conf";
    write_file_raw($conf_path, $conf);
    $pidfile = "$self->{prefix}/nginx.pid";
    unlink $pidfile;
    note_verbose("nginx.conf:\n$conf");

    @cmd = ($self->{binary}, '-p', "$self->{prefix}/", '-c', $conf_path,
        '-e', "$self->{prefix}/error.log");
    if ($self->{valgrind}) {
        unshift @cmd, valgrind_argv($self->{prefix});
    }
    note_verbose("starting: @cmd");

    $pid = fork();
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close_fds();
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
        my $p = read_file($pidfile);
        ($self->{pid}) = $p =~ /(\d+)/;
        $err = "bad pid file" unless $self->{pid};
    }

    if (!$err) {
        for my $port (listen_ports($conf)) {
            next if wait_for(sub { port_accepts($port) },
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
            . tail(read_file("$self->{prefix}/error.log"), 30)
            . "--- stderr:\n"
            . tail(read_file("$self->{prefix}/stderr.log"), 30);
        $self->{start_error} = $err;
        $self->_kill_all if $self->{running} || $self->{pid};
        $self->{running} = 0;
        return 0;
    }

    note_verbose("nginx started, master $self->{pid}");
    return 1;
}

sub start_error { $_[0]{start_error} }

# start nginx or die with the reason and the error log tail
sub run {
    my ($self) = @_;
    $self->try_run or croak "nginx did not start: $self->{start_error}";
    return $self;
}

# write a file into the prefix (placeholders filled); returns its path
sub write_file {
    my ($self, $name, $data) = @_;
    my $path = "$self->{prefix}/$name";
    make_path(dirname($path));
    write_file_raw($path, $self->fill($data));
    return $path;
}

sub _kill_all {
    my ($self) = @_;
    my @pids = grep { $_ } ($self->{pid}, $self->child_pids);
    kill 'KILL', @pids if @pids;
    wait_for(sub { !grep { alive($_) } @pids }, 5);
    if ($self->{child}) {
        waitpid($self->{child}, 0);
        $self->{child} = undef;
    }
    $self->{pid} = undef;
    $self->{running} = 0;
}

# graceful stop (QUIT, or signal => 'TERM' for nginx's fast stop); TERM
# and then KILL if nginx does not exit within stop_timeout.  A forced stop
# is recorded as a problem, which fails the final check.  Returns true
# when nginx exited on the first signal.
sub stop {
    my ($self, %opt) = @_;
    my ($pid, @kids, $ok, $timeout, $sig);

    return 1 unless $self->{running};
    $pid = $self->{pid};
    @kids = $self->child_pids;
    $timeout = $opt{timeout} // $self->{stop_timeout};

    $sig = $opt{signal} // 'QUIT';
    note_verbose("stopping nginx $pid ($sig)");
    kill $sig, $pid;
    $ok = wait_for(sub {
        if ($self->{child} && waitpid($self->{child}, WNOHANG) > 0) {
            $self->{child_status} = $?;
            $self->{child} = undef;
        }
        return !alive($pid) && !grep { alive($_) } @kids;
    }, $timeout);

    if (!$ok) {
        $self->problem("nginx (pid $pid) did not exit within ${timeout}s"
            . " of $sig");
        kill 'TERM', $pid;
        wait_for(sub { !alive($pid) }, 5);
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
    write_file_raw("$self->{prefix}/nginx.conf", $conf);
    $from = -s "$self->{prefix}/error.log" // 0;

    note_verbose("reloading nginx $self->{pid}");
    kill 'HUP', $self->{pid};

    $ok = wait_for(sub {
        my $log = read_file("$self->{prefix}/error.log", $from);
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
    my $self = blessed $_[0] && $_[0]->isa(__PACKAGE__) ? shift
        : ($CURRENT // __PACKAGE__->new);
    my (%parts) = @_;
    my ($dir, $conf, @cmd, $out, $status);

    $dir = "$self->{prefix}/nginx-t-" . ++$self->{t_count};
    make_path($dir);
    chmod 0755, $dir;
    $conf = $self->conf_text($dir, %parts);
    write_file_raw("$dir/nginx.conf", $conf);

    @cmd = ($self->{binary}, '-t', '-p', "$dir/", '-c', "$dir/nginx.conf",
        '-e', "$dir/error.log");
    $out = capture(@cmd);
    $status = $? >> 8;
    note_verbose("nginx -t: status $status\n$out");
    return ($status, $out);
}


# --- HTTP and panels --------------------------------------------------------

# $t->http_get($path, %headers) -> { code, headers, body, raw }
sub http_get {
    my ($self, $path, %h) = @_;
    return http_request($self->port(0), 'GET', $path, headers => \%h);
}

# the value of an unlabelled sample of /metrics (a location with
# amonitor_metrics at $path, default /metrics); -1 without one
sub metric {
    my ($self, $name, $path) = @_;
    my $body = $self->http_get($path // '/metrics')->{body} // '';
    return $body =~ /^\Q$name\E (\S+)$/m ? $1 : -1;
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

# An instance that goes out of scope is stopped; its logs are still
# checked at the end, through a record of what the check needs.
sub DESTROY {
    my ($self) = @_;
    return if $self->{retired} || $$ != ($self->{owner} // 0);
    local ($@, $?);
    eval { $self->stop if $self->{running} };
    return unless $self->{starts} && !Test::AMonitor::Log::final_done();
    push @RETIRED, bless({ retired => 1, running => 0,
        map { $_ => $self->{$_} } qw(prefix ignore problems starts leave)
    }, ref $self);
}


1;
