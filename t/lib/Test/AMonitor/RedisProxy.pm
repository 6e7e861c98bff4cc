package Test::AMonitor::RedisProxy;

# A TCP proxy between nginx and a redis-server, for fault tests.  It reads
# the RESP commands going up and counts the replies coming down, so that
# at a chosen command it can cut the connection (before or after Redis
# got it) or stop delivering replies (Redis runs the command, the client
# never hears back).  It can also refuse new connections.  Runs on the
# process-wide Mojo::IOLoop, like the fake SDKs.
#
#   my $p = Test::AMonitor::RedisProxy->new(redis_port => $port);
#   $p->on(qr/amonitor claim.*\Q$id\E/s, 'cut_after');
#   $p->port; $p->refuse(1); $p->commands; $p->drop_all;
#
# Actions of a rule (each rule fires once):
#   cut_before  the command never reaches Redis; both sides are closed
#   cut_after   Redis gets it and runs it; its reply is not delivered and
#               both sides are closed 200 ms later
#   stall       Redis gets it; neither its reply nor any later one on that
#               connection is delivered (the connection stays open)

use strict;
use warnings;

use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC);
use Mojo::IOLoop;
use Scalar::Util qw(weaken);
use Test::AMonitor::Util qw(free_port note_verbose);

sub new {
    my ($class, %opt) = @_;
    my ($self, $weak);

    $self = bless {
        redis_port => $opt{redis_port},
        port       => free_port(),
        rules      => [],
        conns      => {},
        commands   => [],
        refuse     => 0,
        accepted   => 0,
    }, $class;

    $weak = $self;
    weaken $weak;
    $self->{server} = Mojo::IOLoop->server(
        { address => '127.0.0.1', port => $self->{port} } => sub {
            my ($loop, $stream, $id) = @_;
            $weak->_accept($stream, $id) if $weak;
        });
    # Mojo clears close-on-exec on listening sockets: no child (nginx,
    # redis-server) may keep the port open
    my $h = Mojo::IOLoop->acceptor($self->{server})->handle;
    my $flags = fcntl($h, F_GETFD, 0);
    fcntl($h, F_SETFD, $flags | FD_CLOEXEC) if defined $flags;
    return $self;
}

sub port { $_[0]{port} }

# every command seen (joined with spaces), in order, on any connection
sub commands { @{ $_[0]{commands} } }

sub connections { scalar keys %{ $_[0]{conns} } }
sub accepted    { $_[0]{accepted} }

sub on {
    my ($self, $re, $action) = @_;
    push @{ $self->{rules} }, { re => $re, action => $action, fired => 0 };
    return $self;
}

# rules that have not fired yet
sub pending_rules { scalar grep { !$_->{fired} } @{ $_[0]{rules} } }

sub refuse {
    my ($self, $on) = @_;
    $self->{refuse} = $on ? 1 : 0;
    return $self;
}

sub drop_all {
    my ($self) = @_;
    $self->_close($_) for keys %{ $self->{conns} };
    return $self;
}

sub _accept {
    my ($self, $down, $id) = @_;
    my ($weak, $c);

    $self->{accepted}++;
    if ($self->{refuse}) {
        $down->close;
        return;
    }

    $c = $self->{conns}{$id} = { down => $down, inbuf => '', outbuf => '',
        sent => 0, replies => 0, stall_from => undef, upq => '' };
    $weak = $self;
    weaken $weak;

    $down->timeout(0);
    $down->on(read => sub { $weak->_up($id, $_[1]) if $weak });
    $down->on(close => sub { $weak->_close($id) if $weak });

    Mojo::IOLoop->client({ address => '127.0.0.1',
        port => $self->{redis_port} } => sub {
        my ($loop, $err, $up) = @_;
        return unless $weak;
        my $c = $weak->{conns}{$id} or do { $up->close if $up; return };
        if ($err) {
            $weak->_close($id);
            return;
        }
        $c->{up} = $up;
        $up->timeout(0);
        $up->on(read => sub { $weak->_down($id, $_[1]) if $weak });
        $up->on(close => sub { $weak->_close($id) if $weak });
        $up->write($c->{upq}) if length $c->{upq};
        $c->{upq} = '';
    });
}

sub _close {
    my ($self, $id) = @_;
    my $c = delete $self->{conns}{$id} or return;
    $c->{down}->close if $c->{down};
    $c->{up}->close if $c->{up};
}

sub _to_redis {
    my ($c, $bytes) = @_;
    if ($c->{up}) { $c->{up}->write($bytes) }
    else          { $c->{upq} .= $bytes }
}

# client -> Redis: forward whole commands, looking at each
sub _up {
    my ($self, $id, $bytes) = @_;
    my $c = $self->{conns}{$id} or return;
    my ($len, $args, $text);

    $c->{inbuf} .= $bytes;
    while (($len, $args) = _parse_command($c->{inbuf})) {
        last unless defined $len;
        my $raw = substr($c->{inbuf}, 0, $len, '');
        $text = join ' ', @$args;
        push @{ $self->{commands} }, $text;
        note_verbose("redis proxy: $text");

        my $rule = (grep { !$_->{fired} && $text =~ $_->{re} }
            @{ $self->{rules} })[0];
        my $n = $c->{sent}++;

        if (!$rule) {
            _to_redis($c, $raw);
            next;
        }

        $rule->{fired} = 1;
        note_verbose("redis proxy: $rule->{action} at command $n");

        if ($rule->{action} eq 'cut_before') {
            $self->_close($id);
            return;
        }

        _to_redis($c, $raw);
        $c->{stall_from} //= $n;

        if ($rule->{action} eq 'cut_after') {
            my $weak = $self;
            weaken $weak;
            Mojo::IOLoop->timer(0.2 => sub { $weak->_close($id) if $weak });
        }
    }
}

# Redis -> client: deliver replies, unless they are stalled
sub _down {
    my ($self, $id, $bytes) = @_;
    my $c = $self->{conns}{$id} or return;
    my ($len, $out);

    $c->{outbuf} .= $bytes;
    $out = '';
    while (defined($len = _reply_len($c->{outbuf}, 0))) {
        my $raw = substr($c->{outbuf}, 0, $len, '');
        my $n = $c->{replies}++;
        next if defined $c->{stall_from} && $n >= $c->{stall_from};
        $out .= $raw;
    }
    $c->{down}->write($out) if length $out;
}

# a whole command at the start of $buf: (its length, [args]) or ()
sub _parse_command {
    my ($buf) = @_;
    my ($pos, $n, @args);

    return () unless $buf =~ /\A\*(\d+)\r\n/;
    $n = $1;
    $pos = length("*$n\r\n");
    for (1 .. $n) {
        return () unless substr($buf, $pos) =~ /\A\$(\d+)\r\n/;
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
