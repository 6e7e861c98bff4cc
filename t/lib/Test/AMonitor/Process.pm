package Test::AMonitor::Process;

# Operating-system helpers of the harness's process control: /proc
# lookups (state, parent, command line, children), running a command with
# a clean set of descriptors, whole-file reads and writes, which ports an
# nginx.conf listens on, and the valgrind command line nginx runs under.
# Test::AMonitor::Nginx builds on these.

use strict;
use warnings;

use Carp qw(croak);
use Exporter 'import';
use IO::Socket::INET;
use POSIX qw(_exit);

our @EXPORT_OK = qw(proc_stat proc_cpu_ms alive cmdline children close_fds capture
    read_file write_file_raw tail listen_ports port_accepts valgrind_argv
    strace_start strace_stop start_session proc_mem);

our $STRACE = '/usr/bin/strace';


# (state, ppid) of a process from /proc/PID/stat; empty if it is gone
sub proc_stat {
    my ($pid) = @_;
    my $fh;
    open($fh, '<', "/proc/$pid/stat") or return;
    my $s = <$fh> // '';
    close $fh;
    # pid (comm) state ppid ...
    $s =~ /\)\s+(\S)\s+(\d+)/ or return;
    return ($1, $2);
}

# the CPU time a process has used so far, ms (utime + stime; 0 if gone)
sub proc_cpu_ms {
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/stat") or return 0;
    my $s = <$fh> // '';
    close $fh;
    my @f = split ' ', (split /\) /, $s, 2)[1] // '';
    return (($f[11] // 0) + ($f[12] // 0)) * 1000 / 100;
}

# the memory lines of /proc/PID/status in kB ({} if it is gone): VmRSS is
# RssAnon (private memory, where a leak shows) + RssFile + RssShmem (the
# zone's pages the process touched: they grow with the dedupe table, up
# to the zone size)
sub proc_mem {
    my ($pid) = @_;
    my %m;
    open(my $fh, '<', "/proc/$pid/status") or return {};
    while (<$fh>) {
        $m{$1} = $2 if /^(VmRSS|RssAnon|RssFile|RssShmem):\s+(\d+)\s+kB/;
    }
    return \%m;
}

# true while the process exists and is neither a zombie nor dead
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    my ($state) = proc_stat($pid);
    return 0 if !defined $state || $state eq 'Z' || $state eq 'X';
    return 1;
}

# the command line (argv joined by spaces; the process title of nginx)
sub cmdline {
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

# pids of the live children of $ppid, ascending
sub children {
    my ($ppid) = @_;
    my ($dh, @out);
    opendir($dh, '/proc') or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my ($state, $pp) = proc_stat($pid);
        next unless defined $pp && $pp == $ppid;
        next if $state eq 'Z';
        push @out, $pid;
    }
    closedir $dh;
    @out = sort { $a <=> $b } @out;
    return @out;
}

# In a child about to exec nginx: close every descriptor but 0-2, so that
# nginx does not inherit listening sockets of fake SDKs (Mojo clears their
# close-on-exec flag) or port lock files.
sub close_fds {
    my $dh;
    opendir($dh, '/proc/self/fd') or return;
    my @fds = grep { /^\d+$/ && $_ > 2 } readdir $dh;
    closedir $dh;
    POSIX::close($_) for @fds;
}

# run a command; its stdout and stderr together ($? is its status)
sub capture {
    my (@cmd) = @_;
    my ($pid, $fh, $out);
    $pid = open($fh, '-|');
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close_fds();
        open(STDERR, '>&', \*STDOUT);
        open(STDIN, '<', '/dev/null');
        exec(@cmd) or do { print "exec $cmd[0]: $!\n"; _exit(127) };
    }
    local $/;
    $out = <$fh> // '';
    close $fh;
    return $out;
}

# start a command in a session of its own, as a terminal's shell starts
# a foreground job: SIGINT and SIGQUIT at their defaults (a suite started
# as a background job of a script has them ignored, and a shell that
# starts with SIGINT ignored cannot trap it), stdout and stderr to $out,
# stdin /dev/null, in $dir with %$env added; returns its pid, which is
# also its process group (kill 'INT', -$pid is a Ctrl-C)
sub start_session {
    my ($out, $dir, $env, @cmd) = @_;
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        POSIX::setsid();
        $SIG{INT} = $SIG{QUIT} = 'DEFAULT';
        open(STDOUT, '>', $out) or _exit(127);
        open(STDERR, '>&', \*STDOUT) or _exit(127);
        open(STDIN, '<', '/dev/null') or _exit(127);
        chdir $dir or _exit(127);
        $ENV{$_} = $env->{$_} for keys %$env;
        exec(@cmd) or do { print "exec $cmd[0]: $!\n"; _exit(127) };
    }
    return $pid;
}

# the bytes of a file from offset $from; empty if it cannot be read
sub read_file {
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

# strace following process $pid into $file (strace -qq, no signals shown,
# more options in @opt); returns strace's pid.  The caller checks that it
# attached (a call it knows of shows in the file).
sub strace_start {
    my ($pid, $file, @opt) = @_;
    my $spid = fork() // croak "fork: $!";
    if ($spid == 0) {
        open(STDOUT, '>', '/dev/null');
        open(STDERR, '>', '/dev/null');
        exec($STRACE, '-qq', '-p', $pid, '-o', $file, '-e', 'signal=none',
            @opt)
            or _exit(127);
    }
    return $spid;
}

# stop a strace_start (its file is complete once it has exited)
sub strace_stop {
    my ($spid) = @_;
    kill 'TERM', $spid;
    for (1 .. 50) {
        return 1 if waitpid($spid, POSIX::WNOHANG()) != 0;
        select(undef, undef, undef, 0.1);
    }
    return 0;
}

# write a whole file (binary); dies on failure
sub write_file_raw {
    my ($path, $data) = @_;
    my $fh;
    open($fh, '>', $path) or croak "write $path: $!";
    binmode $fh;
    print {$fh} $data;
    close $fh;
}

# the last $n lines of a text
sub tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

# the TCP ports an nginx.conf listens on (not unix sockets, not udp)
sub listen_ports {
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

# true when 127.0.0.1:$port accepts a connection
sub port_accepts {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

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

# the command words that run a program under valgrind memcheck, with
# one log per process in $dir and the suppressions above: errors make
# valgrind exit 42, definite leaks count as errors
sub valgrind_argv {
    my ($dir) = @_;
    my $supp = "$dir/valgrind.supp";
    write_file_raw($supp, $VALGRIND_SUPP) unless -f $supp;
    return ('valgrind', '--tool=memcheck', '--error-exitcode=42',
        '--leak-check=full', '--errors-for-leak-kinds=definite',
        '--num-callers=30', "--log-file=$dir/valgrind.%p.log",
        "--suppressions=$supp",
        split(' ', $ENV{TEST_NGINX_VALGRIND_OPTS} // ''));
}


1;
