package Test::AMonitor::Panel;

# A dashboard ("panel") WebSocket client for the tests, on Mojolicious's
# own client so that it shares no code with the module under test.  All
# waits spin the process-wide Mojo::IOLoop (see wait_for).

use strict;
use warnings;

use Carp qw(croak);
use Exporter 'import';
use Mojo::IOLoop;
use Mojo::UserAgent;
use Mojo::WebSocket qw(WS_CLOSE WS_PING WS_PONG);
use Scalar::Util qw(weaken);
use Test::AMonitor::Util qw(default_timeout wait_for json_text
    try_decode_json note_verbose now_ms);

our @EXPORT_OK = qw(panel_connect panel_try_connect panel_handshake_status
    panels_per_worker);


my $UA;

sub _ua {
    return $UA if $UA;
    $UA = Mojo::UserAgent->new(
        connect_timeout    => 10,
        inactivity_timeout => 0,    # tests bound their own waits
        request_timeout    => 0,
        max_redirects      => 0,
    );
    return $UA;
}


# ($panel, $res) = Test::AMonitor::Panel->open($url, %opt)
#   $panel is undef when the handshake did not end in a WebSocket;
#   $res = { code, message, headers => { lc name => value }, body, error }
sub open {
    my ($class, $url, %opt) = @_;
    my ($timeout, $headers, $done, $self, $res, @proto);

    $timeout = $opt{timeout} // default_timeout();
    $headers = $opt{headers} // {};
    @proto   = @{ $opt{protocols} // [] };

    $self = bless {
        url         => $url,
        queue       => [],
        all         => [],
        open        => 0,
        close_code  => undef,
        close_reason => undef,
        server_close => undef,
        pongs       => [],
        pings       => 0,
        tx          => undef,
        name        => $opt{name} // $url,
    }, $class;

    note_verbose("panel $self->{name}: connecting");

    _ua()->websocket($url => {%$headers} => (@proto ? \@proto : ()) => sub {
        my ($ua, $tx) = @_;
        $done = 1;
        $res = {
            code    => $tx->res->code,
            message => $tx->res->message,
            headers => _headers($tx->res->headers),
            body    => $tx->res->body,
            error   => $tx->res->error ? $tx->res->error->{message} : undef,
        };
        return unless $tx->is_websocket;
        $self->_attach($tx);
    });

    if (!wait_for(sub { $done }, $timeout)) {
        return (undef, { code => undef, error => "handshake timed out" });
    }

    return ($self->{tx} ? $self : undef, $res);
}

sub _headers {
    my ($h) = @_;
    my %out;
    for my $name (@{ $h->names }) {
        $out{ lc $name } = join ', ', @{ $h->every_header($name) };
    }
    return \%out;
}

sub _attach {
    my ($self, $tx) = @_;
    my $weak = $self;

    weaken $weak;
    $self->{tx}   = $tx;
    $self->{open} = 1;

    $tx->on(text => sub {
        my ($tx, $bytes) = @_;
        $weak->_push('text', $bytes) if $weak;
    });
    $tx->on(binary => sub {
        my ($tx, $bytes) = @_;
        $weak->_push('binary', $bytes) if $weak;
    });
    $tx->on(frame => sub {
        my ($tx, $frame) = @_;
        return unless $weak;
        if ($frame->[4] == WS_PONG) {
            push @{ $weak->{pongs} }, $frame->[5];
        }
        elsif ($frame->[4] == WS_PING) {
            $weak->{pings}++;
        }
        elsif ($frame->[4] == WS_CLOSE && !defined $weak->{server_close}) {
            my $p = $frame->[5];
            $weak->{server_close} = length $p >= 2 ? unpack('n', $p) : 1005;
            $weak->{server_reason} = length $p > 2 ? substr($p, 2) : '';
        }
    });
    $tx->on(finish => sub {
        my ($tx, $code, $reason) = @_;
        return unless $weak;
        $weak->{open}         = 0;
        $weak->{close_code}   = $code;
        $weak->{close_reason} = $reason;
        note_verbose("panel $weak->{name}: closed ", $code // 'none');
    });
}

sub _push {
    my ($self, $type, $bytes) = @_;
    my $m = { type => $type, data => $bytes };

    if ($type eq 'text') {
        $m->{json} = try_decode_json($bytes);
    }
    note_verbose("panel $self->{name} <- $type: ",
        length $bytes > 300 ? substr($bytes, 0, 300) . '...' : $bytes);
    push @{ $self->{queue} }, $m;
    push @{ $self->{all} }, $m;
}


sub is_open { $_[0]{open} }
sub tx      { $_[0]{tx} }

# the name given to open (default: the URL), for test names
sub name    { $_[0]{name} }

sub send_text {
    my ($self, $text) = @_;
    croak "panel is closed" unless $self->{open};
    note_verbose("panel $self->{name} -> text: $text");
    $self->{tx}->send({ text => $text });
    return $self;
}

sub send_binary {
    my ($self, $bytes) = @_;
    croak "panel is closed" unless $self->{open};
    $self->{tx}->send({ binary => $bytes });
    return $self;
}

sub send_json {
    my ($self, $data) = @_;
    return $self->send_text(json_text($data));
}

# send one raw frame: fin, rsv1..3, opcode, payload (Mojo masks it)
sub send_frame {
    my ($self, $fin, $rsv1, $rsv2, $rsv3, $op, $payload) = @_;
    croak "panel is closed" unless $self->{open};
    $self->{tx}->send([$fin, $rsv1, $rsv2, $rsv3, $op, $payload]);
    return $self;
}

# wait until everything queued was handed to the kernel
sub flush {
    my ($self, $timeout) = @_;
    return wait_for(sub {
        return 1 unless $self->{open};
        my $stream = Mojo::IOLoop->stream($self->{tx}->connection);
        return !length($self->{tx}{write} // '')
            && !($stream && $stream->is_writing);
    }, $timeout // default_timeout());
}

# next message not yet returned, or undef after $timeout seconds
sub recv {
    my ($self, $timeout) = @_;
    wait_for(sub { @{ $self->{queue} } || !$self->{open} },
        $timeout // default_timeout());
    return shift @{ $self->{queue} };
}

# next text message decoded as JSON (non-JSON and binary ones are skipped)
sub recv_json {
    my ($self, $timeout) = @_;
    my $m = $self->recv_until(sub { defined $_[0]{json} }, $timeout);
    return $m ? $m->{json} : undef;
}

# first message for which $cb->($msg) is true; messages before it are
# consumed (they stay in ->messages); undef on timeout
sub recv_until {
    my ($self, $cb, $timeout) = @_;
    my $found;

    wait_for(sub {
        while (my $m = shift @{ $self->{queue} }) {
            local $_ = $m;
            if ($cb->($m)) {
                $found = $m;
                return 1;
            }
        }
        return !$self->{open};
    }, $timeout // default_timeout());

    return $found;
}

# the first message of $type (JSON envelope "type") with a field equal:
# $p->recv_type('action_ack', timeout => 5, action_msg_id => $id)
sub recv_type {
    my ($self, $type, %opt) = @_;
    my $timeout = delete $opt{timeout};

    return $self->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH' && ($j->{type} // '') eq $type;
        for my $k (keys %opt) {
            my $v = exists $j->{$k} ? $j->{$k}
                : ref $j->{payload} eq 'HASH' ? $j->{payload}{$k} : undef;
            return 0 unless defined $v && $v eq $opt{$k};
        }
        return 1;
    }, $timeout);
}

# send the action $msg_id to $target (restart), dialing $url if given
sub send_action {
    my ($self, $msg_id, $target, $url) = @_;
    return $self->send_json({ msg_id => $msg_id, type => 'action',
        target_id => $target, timestamp => now_ms(),
        payload => { action => 'restart',
            (defined $url ? (target_url => $url) : ()) } });
}

# every answer to action $msg_id received so far (whether consumed or
# not): its action_acks and errors, as JSON envelopes
sub answers_to {
    my ($self, $msg_id) = @_;
    return map { $_->{json} } grep {
        my $j = $_->{json};
        my $type = ref $j eq 'HASH' ? $j->{type} // '' : '';
        ($type eq 'error' && ($j->{msg_id} // '') eq $msg_id)
            || ($type eq 'action_ack' && ref $j->{payload} eq 'HASH'
                && ($j->{payload}{action_msg_id} // '') eq $msg_id);
    } @{ $self->{all} };
}

# the final answer to action $msg_id: its action_ack (by action_msg_id)
# or an error about it (by msg_id); the JSON envelope, undef on timeout
sub answer_to {
    my ($self, $msg_id, $timeout) = @_;
    my $m = $self->recv_until(sub {
        my $j = $_[0]{json};
        return 0 unless ref $j eq 'HASH';
        my $type = $j->{type} // '';
        return ($type eq 'error' && ($j->{msg_id} // '') eq $msg_id)
            || ($type eq 'action_ack' && ref $j->{payload} eq 'HASH'
                && ($j->{payload}{action_msg_id} // '') eq $msg_id);
    }, $timeout);
    return $m ? $m->{json} : undef;
}

# the SDK's successful action_ack to $msg_id among everything received
# (past any other answer to it, a "duplicate ignored" one too), waiting
# at most $timeout seconds; the JSON envelope, undef if none came
sub success_ack {
    my ($self, $msg_id, $timeout) = @_;
    my $end = now_ms() + $timeout * 1000;
    while (1) {
        my ($ack) = grep { $_->{type} eq 'action_ack'
            && $_->{payload}{success} } $self->answers_to($msg_id);
        return $ack if $ack || now_ms() >= $end;
        $self->recv_until(sub { 0 }, 0.05);
    }
}

# everything received since the connection opened (list of hashrefs)
sub messages { @{ $_[0]{all} } }

# messages received but not yet returned by recv*
sub pending { @{ $_[0]{queue} } }

sub clear { @{ $_[0]{queue} } = (); return $_[0] }

# send a ping; true if the matching pong arrives within $timeout
sub ping {
    my ($self, $payload, $timeout) = @_;
    $payload //= 'amon-ping-' . int(rand(1e9));
    return 0 unless $self->{open};
    $self->{tx}->send([1, 0, 0, 0, WS_PING, $payload]);
    return wait_for(sub {
        grep { $_ eq $payload } @{ $self->{pongs} };
    }, $timeout // default_timeout()) ? 1 : 0;
}

# number of pings the server sent (Mojo answers them itself)
sub pings_received { $_[0]{pings} }

# start the closing handshake and wait for its end; returns the code of
# the connection's end (the server's echo, normally equal to $code)
sub close {
    my ($self, $code, $reason, $timeout) = @_;
    return $self->{close_code} unless $self->{open};
    $self->{tx}->finish($code // 1000, $reason);
    wait_for(sub { !$self->{open} }, $timeout // default_timeout());
    return $self->{close_code};
}

# close the TCP connection without a closing handshake
sub drop {
    my ($self) = @_;
    return unless $self->{open};
    my $stream = Mojo::IOLoop->stream($self->{tx}->connection);
    $stream->close if $stream;
    wait_for(sub { !$self->{open} }, 2);
}

# wait until the server ends the connection; returns close_code or undef
sub wait_closed {
    my ($self, $timeout) = @_;
    wait_for(sub { !$self->{open} }, $timeout // default_timeout());
    return $self->{open} ? undef : $self->close_code;
}

# the close code the server sent in its Close frame; 1006 if the
# connection ended without one; undef while open
sub close_code {
    my ($self) = @_;
    return $self->{server_close} if defined $self->{server_close};
    return undef if $self->{open};
    return $self->{close_code} // 1006;
}

sub close_reason {
    my ($self) = @_;
    return $self->{server_reason} if defined $self->{server_close};
    return $self->{close_reason};
}

# stop reading from the socket (a slow panel); resume undoes it
sub pause {
    my ($self) = @_;
    my $stream = $self->{open}
        && Mojo::IOLoop->stream($self->{tx}->connection);
    $stream->stop if $stream;
    return $self;
}

sub resume {
    my ($self) = @_;
    my $stream = $self->{open}
        && Mojo::IOLoop->stream($self->{tx}->connection);
    $stream->start if $stream;
    return $self;
}

sub DESTROY {
    my ($self) = @_;
    return unless $self->{open} && $self->{tx};
    local $@;
    eval {
        my $stream = Mojo::IOLoop->stream($self->{tx}->connection);
        $stream->close if $stream;
    };
}

# --- functions (exported through Test::AMonitor) ---------------------------

# a connected panel, or die with the HTTP status and body of the refusal
sub panel_connect {
    my ($url, %opt) = @_;
    my ($p, $res) = __PACKAGE__->open($url, %opt);
    return $p if $p;
    croak sprintf("panel handshake to %s refused: %s %s%s", $url,
        $res->{code} // 'no response', $res->{message} // '',
        ($res->{error} ? " ($res->{error})" : '')
        . (length($res->{body} // '') ? "\n$res->{body}" : ''));
}

sub panel_try_connect {
    my ($url, %opt) = @_;
    return __PACKAGE__->open($url, %opt);
}

# the HTTP status of a panel handshake (101 when it succeeded; the
# connection is then closed); in list context also the response hash
sub panel_handshake_status {
    my ($url, %opt) = @_;
    my ($p, $res) = __PACKAGE__->open($url, %opt);
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


1;
