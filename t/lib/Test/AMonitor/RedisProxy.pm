package Test::AMonitor::RedisProxy;

# A TCP proxy between nginx and a redis-server, for fault tests.  It reads
# the RESP commands going up and counts the replies coming down, so that
# at a chosen command it can cut the connection (before or after Redis
# got it) or stop delivering replies (Redis runs the command, the client
# never hears back).  It can also refuse new connections.  It runs in a
# child process with plain sockets, so that the test process blocking
# for a moment (redis-cli, waits) never delays what it forwards.
#
#   my $p = Test::AMonitor::RedisProxy->new(redis_port => $port);
#   (redis_host => ADDR: another host than 127.0.0.1;
#    tight => 1: a 4 KB receive buffer and 1000-byte segments, so that
#    a client's socket fills after tens of kilobytes once $p->deaf(1))
#   $p->on(qr/amonitor claim.*\Q$id\E/s, 'cut_after');
#   $p->port; $p->refuse(1); $p->commands; $p->drop_all; $p->release;
#   $p->deaf(1): stop reading what clients send (TCP pushes back on them),
#   $p->deaf(0): read it again
#
# Actions of a rule (each rule fires once, at the first match):
#   cut_before  the command never reaches Redis; both sides are closed
#   cut_after   Redis gets it and runs it; its reply is not delivered and
#               both sides are closed 200 ms later
#   stall       Redis gets it; neither its reply nor any later one on that
#               connection is delivered (the connection stays open)
#   hold        as stall, but the replies are kept and delivered, in order,
#               at $p->release (a slow Redis, for as long as a test needs)
#   delay       the command, and every later one on that connection, is
#               kept from Redis until $p->release (a command slow to get
#               there, while other clients' go on)

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Socket qw(AF_UNIX IPPROTO_TCP PF_UNSPEC SOCK_STREAM SOL_SOCKET SO_RCVBUF
    TCP_MAXSEG);
use Time::HiRes qw(time);
use Test::AMonitor::Util qw(free_port note_verbose);

my @RUNNING;

sub new {
    my ($class, %opt) = @_;
    my ($self, $parent, $child, $pid);

    $self = bless {
        redis_host => $opt{redis_host} // '127.0.0.1',
        redis_port => $opt{redis_port},
        port       => free_port(),
        dir        => tempdir('amon-rproxy-XXXXXX', TMPDIR => 1,
            CLEANUP => 1),
    }, $class;
    $self->{log} = "$self->{dir}/commands";

    # a receive buffer and segment size set before listen() hold for
    # every connection accepted (window scale and MSS go in the SYN-ACK)
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $self->{port}, Proto => 'tcp', ReuseAddr => 1)
        or die "redis proxy: bind $self->{port}: $!\n";
    if ($opt{tight}) {
        setsockopt($listen, SOL_SOCKET, SO_RCVBUF, 4096) or die "$!\n";
        setsockopt($listen, IPPROTO_TCP, TCP_MAXSEG, 1000) or die "$!\n";
    }
    $listen->listen(64) or die "redis proxy: listen on $self->{port}: $!\n";

    socketpair($parent, $child, AF_UNIX, SOCK_STREAM, PF_UNSPEC)
        or die "socketpair: $!\n";

    $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        # stop() ends it with TERM: it must die without the parent's exit
        # handlers, which would stop the parent's redis-servers and nginx
        @SIG{qw(TERM INT)} = ('DEFAULT', 'DEFAULT');
        close $parent;
        eval { _serve($self, $listen, $child) };
        POSIX::_exit(0);
    }

    close $child;
    close $listen;
    $parent->autoflush(1);
    $self->{pid} = $pid;
    $self->{ctl} = $parent;
    push @RUNNING, $self;
    return $self;
}

sub port { $_[0]{port} }

# every command seen (arguments joined with spaces), in order
sub commands {
    my ($self) = @_;
    open(my $fh, '<', $self->{log}) or return ();
    my @c = map { chomp; s/\\n/\n/g; s/\\\\/\\/g; $_ } <$fh>;
    return @c;
}

sub _ctl {
    my ($self, $line) = @_;
    my $fh = $self->{ctl};
    print $fh "$line\n";
    my $ok = <$fh>;
    return $self;
}

sub on {
    my ($self, $re, $action) = @_;
    my $text = "$re";
    $text =~ s/\n/\\n/g;
    return $self->_ctl("on $action $text");
}

sub refuse   { $_[0]->_ctl('refuse ' . ($_[1] ? 1 : 0)) }
sub drop_all { $_[0]->_ctl('drop') }
sub release  { $_[0]->_ctl('release') }
sub deaf     { $_[0]->_ctl('deaf ' . ($_[1] ? 1 : 0)) }

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

END { local $?; $_->stop for grep { defined } @RUNNING }


# --- the child -----------------------------------------------------------

sub _serve {
    my ($self, $listen, $ctl) = @_;
    my (%conns, @rules, $refuse, $deaf, $sel, $log, %by_fh, @timers);

    open($log, '>>', $self->{log}) or die;
    $log->autoflush(1);
    $sel = IO::Select->new($listen, $ctl);
    $refuse = 0;
    $deaf = 0;

    my $close = sub {
        my ($c) = @_;
        for my $s (grep { defined } @$c{qw(down up)}) {
            $sel->remove($s);
            delete $by_fh{ fileno $s };
            close $s;
        }
        delete $conns{ $c->{id} };
    };

    my $up = sub {
        my ($c, $bytes) = @_;
        $c->{inbuf} .= $bytes;
        while (my ($len, $args) = _parse_command($c->{inbuf})) {
            my $raw = substr($c->{inbuf}, 0, $len, '');
            my $text = join ' ', @$args;
            (my $line = $text) =~ s/\\/\\\\/g;
            $line =~ s/\n/\\n/g;
            print $log "$line\n";
            if (defined $c->{upheld}) {
                $c->{upheld} .= $raw;
                $c->{sent}++;
                next;
            }
            my $n = $c->{sent}++;
            my ($rule) = grep { !$_->{fired} && $text =~ $_->{re} } @rules;
            if (!$rule) {
                syswrite($c->{up}, $raw);
                next;
            }
            $rule->{fired} = 1;
            if ($rule->{action} eq 'cut_before') {
                $close->($c);
                return;
            }
            if ($rule->{action} eq 'delay') {
                $c->{upheld} = $raw;
                next;
            }
            syswrite($c->{up}, $raw);
            $c->{stall_from} //= $n;
            $c->{hold} = 1 if $rule->{action} eq 'hold';
            push @timers, [ time + 0.2, $c->{id} ]
                if $rule->{action} eq 'cut_after';
        }
    };

    my $down = sub {
        my ($c, $bytes) = @_;
        my ($len, $out) = (undef, '');
        $c->{outbuf} .= $bytes;
        while (defined($len = _reply_len($c->{outbuf}, 0))) {
            my $raw = substr($c->{outbuf}, 0, $len, '');
            my $n = $c->{replies}++;
            if (defined $c->{stall_from} && $n >= $c->{stall_from}) {
                $c->{held} .= $raw if $c->{hold};
                next;
            }
            $out .= $raw;
        }
        syswrite($c->{down}, $out) if length $out;
    };

    my $next_id = 0;
    for (;;) {
        my $now = time;
        for my $t (grep { $_->[0] <= $now } @timers) {
            $close->($conns{ $t->[1] }) if $conns{ $t->[1] };
        }
        @timers = grep { $_->[0] > $now } @timers;

        for my $fh ($sel->can_read(0.02)) {
            if ($fh == $listen) {
                my $d = $listen->accept or next;
                if ($refuse) {
                    close $d;
                    next;
                }
                my $u = IO::Socket::INET->new(
                    PeerAddr => $self->{redis_host},
                    PeerPort => $self->{redis_port});
                if (!$u) {
                    close $d;
                    next;
                }
                my $c = { id => ++$next_id, down => $d, up => $u,
                    inbuf => '', outbuf => '', sent => 0, replies => 0 };
                $conns{ $c->{id} } = $c;
                $by_fh{ fileno $d } = [ $c, 'down' ];
                $by_fh{ fileno $u } = [ $c, 'up' ];
                $sel->add($u);
                $sel->add($d) unless $deaf;
                next;
            }
            if ($fh == $ctl) {
                my $line = <$ctl>;
                return unless defined $line;
                chomp $line;
                if ($line =~ /^on (\S+) (.*)$/s) {
                    # the substitution would reset $1
                    my ($action, $re) = ($1, $2);
                    $re =~ s/\\n/\n/g;
                    push @rules, { action => $action, re => qr/$re/s,
                        fired => 0 };
                }
                elsif ($line =~ /^refuse (\d)/) {
                    $refuse = $1;
                }
                elsif ($line =~ /^deaf (\d)/) {
                    $deaf = $1;
                    for my $c (values %conns) {
                        if ($deaf) { $sel->remove($c->{down}) }
                        else       { $sel->add($c->{down}) }
                    }
                }
                elsif ($line eq 'drop') {
                    $close->($_) for values %conns;
                }
                elsif ($line eq 'release') {
                    for my $c (grep { defined $_->{upheld} } values %conns) {
                        syswrite($c->{up}, delete $c->{upheld});
                    }
                    for my $c (grep { $_->{hold} } values %conns) {
                        syswrite($c->{down}, $c->{held})
                            if length($c->{held} // '');
                        delete @$c{qw(hold held stall_from)};
                    }
                }
                print $ctl "ok\n";
                $ctl->flush;
                next;
            }
            # closed earlier in this round (its other side went away)
            defined(fileno $fh) or next;
            my $e = $by_fh{ fileno $fh } or next;
            my ($c, $side) = @$e;
            my $n = sysread($fh, my $buf, 65536);
            if (!$n) {
                $close->($c);
                next;
            }
            if ($side eq 'down') { $up->($c, $buf) }
            else                 { $down->($c, $buf) }
        }
    }
}

# a whole command at the start of $buf: (its length, [args]) or ()
sub _parse_command {
    my ($buf) = @_;
    my ($pos, $n, @args);

    return () unless $buf =~ /\A\*(\d+)\r\n/;
    $n = $1;
    $pos = length("*$n\r\n");
    for (1 .. $n) {
        return () unless substr($buf, $pos, 32) =~ /\A\$(\d+)\r\n/;
        my $l = $1;
        $pos += length("\$$l\r\n");
        return () if length($buf) < $pos + $l + 2;
        push @args, substr($buf, $pos, $l);
        $pos += $l + 2;
    }
    return ($pos, \@args);
}

# the length of the whole RESP2 reply at $pos, or undef if incomplete
sub _reply_len {
    my ($buf, $pos) = @_;
    my ($type, $end, $line, $l, $start);

    $start = $pos;
    return undef if length($buf) <= $pos;
    $end = index($buf, "\r\n", $pos);
    return undef if $end < 0;
    $type = substr($buf, $pos, 1);
    $line = substr($buf, $pos + 1, $end - $pos - 1);
    $pos = $end + 2;

    if ($type eq '$') {
        return $pos - $start if $line < 0;
        return undef if length($buf) < $pos + $line + 2;
        return $pos + $line + 2 - $start;
    }
    if ($type eq '*') {
        return $pos - $start if $line < 0;
        for (1 .. $line) {
            $l = _reply_len($buf, $pos) // return undef;
            $pos += $l;
        }
        return $pos - $start;
    }
    return $pos - $start;    # + - :
}

1;
