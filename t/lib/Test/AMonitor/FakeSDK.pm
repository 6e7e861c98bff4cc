package Test::AMonitor::FakeSDK;

# A stand-in for a monitored program's SDK: a WebSocket server (Mojolicious)
# that the agent dials, behaving like the example SDK of the original
# system (heartbeat on open and every interval, events, action -> ack,
# Bearer token check with close 4401).  Runs on the process-wide
# Mojo::IOLoop; several can run at once.  Tests use only its
# methods (documented in docs/testing.md), never the fields of the
# object.

use strict;
use warnings;

use Carp qw(croak);
use Exporter 'import';
use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC);
use Mojo::IOLoop;
use Mojo::Server::Daemon;
use Mojolicious;
use Mojo::JSON qw(true false);
use Scalar::Util qw(weaken);
use Test::AMonitor::Util qw(default_timeout wait_for json_text
    try_decode_json uuid4 now_ms free_port note_verbose);

our @EXPORT_OK = qw(fake_sdk);

my @REGISTERED;    # fake SDKs made through fake_sdk() (weak refs)


# fake_sdk(%opt): a new fake SDK, stopped by the final check of the file
# before it reads the logs (so that nginx sees no peer vanish at exit)
sub fake_sdk {
    my (%opt) = @_;
    my $sdk = __PACKAGE__->new(%opt);
    push @REGISTERED, $sdk;
    weaken $REGISTERED[-1];
    return $sdk;
}

# the fake SDKs made through fake_sdk() that still exist
sub registered {
    my @s = grep { defined } @REGISTERED;
    return @s;
}


# Test::AMonitor::FakeSDK->new(%opt), see Test::AMonitor's POD (fake_sdk)
sub new {
    my ($class, %opt) = @_;
    my $self;

    $self = bless {
        port               => $opt{port} // free_port(),
        target_id          => $opt{target_id} // 'demo-target',
        heartbeat_interval => $opt{heartbeat_interval} // 5,
        token              => $opt{token},
        actions            => $opt{actions} // {},
        ack_delay          => $opt{ack_delay} // 0,
        no_ack             => $opt{no_ack} // 0,
        on_action          => $opt{on_action},
        on_message         => $opt{on_message},
        register_url       => $opt{register_url},
        metadata           => $opt{metadata} // {},
        metrics            => $opt{metrics},
        status             => $opt{status} // 'up',
        tls                => $opt{tls},    # { cert, key }: serve wss://
        host               => $opt{host},   # listen address (127.0.0.1)
        conns              => {},      # id => { c, timer }
        next_id            => 1,
        received           => [],      # every message from the agent
        action_log         => [],      # action envelopes, in order
        action_raw         => [],      # the same as received (bytes)
        executed           => {},      # action msg_id => count
        acks               => [],      # ack envelopes sent
        acks_raw           => [],      # their bytes (JSON text)
        handshakes         => [],      # { path, headers } per connection
        closes             => [],      # { conn, code, reason } per close
        rejected           => 0,       # connections refused with 4401
        accepted           => 0,       # connections accepted in total
        heartbeats         => 0,       # heartbeats sent in total
        seq                => 0,
        daemon             => undef,
    }, $class;

    $self->start unless $opt{no_start};
    return $self;
}

sub port      { $_[0]{port} }
sub target_id { $_[0]{target_id} }
sub url {
    ($_[0]{tls} ? 'wss' : 'ws') . "://127.0.0.1:$_[0]{port}/";
}

sub _app {
    my ($self) = @_;
    my ($app, $weak, $handler);

    $weak = $self;
    weaken $weak;

    $app = Mojolicious->new;
    $app->mode('production');
    $app->log->level('fatal');
    $app->secrets(['amon-test']);
    $handler = sub { $weak ? $weak->_accept(@_) : $_[0]->rendered(500) };
    $app->routes->websocket('/' => $handler);
    $app->routes->websocket('/*rest' => $handler);
    $app->routes->any('/*rest' => { rest => '' } => sub {
        $_[0]->render(text => "fake sdk: websocket only\n", status => 426);
    });
    return $app;
}

# listen (again) on the same port
sub start {
    my ($self) = @_;
    return $self if $self->{daemon};

    # host: 127.0.0.1, or another address (IPv6 without brackets)
    my $host = $self->{host} // '127.0.0.1';
    $host = "[$host]" if $host =~ /:/;
    $self->{daemon} = Mojo::Server::Daemon->new(
        app                => $self->_app,
        listen             => [$self->{tls}
            ? "https://$host:$self->{port}?cert=$self->{tls}{cert}"
                . "&key=$self->{tls}{key}"
            : "http://$host:$self->{port}"],
        silent             => 1,
        inactivity_timeout => 0,
    );
    $self->{daemon}->start;
    # Mojo clears close-on-exec on listening sockets (for hot deployment);
    # set it again so no child process keeps the port open
    for my $id (@{ $self->{daemon}->acceptors }) {
        my $h = Mojo::IOLoop->acceptor($id)->handle;
        my $flags = fcntl($h, F_GETFD, 0);
        fcntl($h, F_SETFD, $flags | FD_CLOEXEC) if defined $flags;
    }
    note_verbose("fake sdk $self->{target_id}: listening on $self->{port}");
    return $self;
}

# stop listening (connections are refused) and close every connection
# with 1001 (going away), like a program that shuts down
sub stop {
    my ($self, $code) = @_;
    my $loop = Mojo::IOLoop->singleton;

    if (my $d = delete $self->{daemon}) {
        $loop->remove($_) for @{ $d->acceptors };
        @{ $d->acceptors } = ();
    }
    $self->_finish_conn($_, $code // 1001) for keys %{ $self->{conns} };
    wait_for(sub { !%{ $self->{conns} } }, 2);
    $self->_forget($_) for keys %{ $self->{conns} };
    note_verbose("fake sdk $self->{target_id}: stopped");
    return $self;
}

# keep the listening socket but stop accepting: connects hang in the
# backlog, like a program that is stuck
sub pause_accept {
    my ($self) = @_;
    $self->{daemon}->stop if $self->{daemon};
    return $self;
}

sub resume_accept {
    my ($self) = @_;
    $self->{daemon}->start if $self->{daemon};
    return $self;
}

# close every agent connection abruptly (TCP close, no Close frame)
sub drop_all {
    my ($self) = @_;

    for my $id (keys %{ $self->{conns} }) {
        my $c = $self->{conns}{$id}{c};
        my $stream = $c && $c->tx
            && Mojo::IOLoop->stream($c->tx->connection);
        $stream->close if $stream;
        $self->_forget($id);
    }
    return $self;
}

# close every agent connection with a Close frame of $code
sub close_all {
    my ($self, $code, $reason) = @_;
    $self->_finish_conn($_, $code // 1000, $reason)
        for keys %{ $self->{conns} };
    return $self;
}

sub _forget {
    my ($self, $id) = @_;
    my $e = delete $self->{conns}{$id} or return;
    Mojo::IOLoop->remove($e->{timer}) if $e->{timer};
}

sub _accept {
    my ($self, $c) = @_;
    my ($id, $auth, $weak, %h);

    $id = $self->{next_id}++;
    $h{ lc $_ } = $c->req->headers->header($_) for @{ $c->req->headers->names };
    push @{ $self->{handshakes} }, { path => $c->req->url->path->to_string,
        headers => \%h };
    $c->inactivity_timeout(0);

    if (defined $self->{token}) {
        $auth = $h{authorization} // '';
        if ($auth ne "Bearer $self->{token}") {
            $self->{rejected}++;
            note_verbose("fake sdk $self->{target_id}: bad token, 4401");
            $c->finish(4401 => 'unauthorized');
            return;
        }
    }

    $weak = $self;
    weaken $weak;
    $self->{accepted}++;
    $self->{conns}{$id} = { c => $c };
    note_verbose("fake sdk $self->{target_id}: agent connection $id");

    $c->on(text => sub {
        my ($c, $bytes) = @_;
        $weak->_on_text($id, $bytes) if $weak;
    });
    $c->on(binary => sub {
        my ($c, $bytes) = @_;
        push @{ $weak->{received} }, { conn => $id, type => 'binary',
            data => $bytes } if $weak;
    });
    $c->on(finish => sub {
        my ($c, $code, $reason) = @_;
        return unless $weak;
        push @{ $weak->{closes} }, { conn => $id, code => $code,
            reason => $reason };
        $weak->_forget($id);
    });

    $self->_send($id, $self->_envelope('register', {
        target_id => $self->{target_id},
        sdk_url   => $self->{register_url},
        metadata  => $self->{metadata},
    })) if defined $self->{register_url};

    $self->_heartbeat($id);
    if ($self->{heartbeat_interval} > 0) {
        $self->{conns}{$id}{timer} = Mojo::IOLoop->recurring(
            $self->{heartbeat_interval} => sub {
                $weak->_heartbeat($id) if $weak;
            });
    }
}

sub _envelope {
    my ($self, $type, $payload, %extra) = @_;
    return {
        msg_id    => uuid4(),
        type      => $type,
        target_id => $self->{target_id},
        timestamp => now_ms(),
        payload   => $payload,
        %extra,
    };
}

# Key order of the example SDK (Python dicts keep insertion order), so that
# the bytes look like what existing SDKs send: envelope fields first in
# PROTOCOL.md order, then payload fields; unknown keys sorted after.
my @KEY_ORDER = qw(msg_id trace_id type target_id timestamp payload
    status metrics event_name data sdk_url metadata action_msg_id success
    message);
my %RANK;
@RANK{@KEY_ORDER} = (0 .. $#KEY_ORDER);

sub to_json {
    my ($v, $depth) = @_;
    return json_text($v) unless ref $v eq 'HASH' && ($depth // 0) < 2;
    my @k = sort { ($RANK{$a} // 99) <=> ($RANK{$b} // 99) || $a cmp $b }
        keys %$v;
    return '{' . join(',', map {
        json_text("$_") . ':' . to_json($v->{$_}, ($depth // 0) + 1)
    } @k) . '}';
}

# The first frame goes through the controller, which answers the
# handshake (101).  Later ones go to the WebSocket transaction itself.
# Until the 101 is written, each send through the controller "renders" it
# again: the daemon queues one more end of the handshake per call, the
# second of which drops the connection (the frames queued so far go out,
# then the socket closes without a Close frame).  Seen with a slow agent
# (a heartbeat timer firing in that window) and with a test process so
# short of CPU that its first events went out in it (t/196, t/197: the
# rest went to a connection that no longer existed).  Every frame and
# Close frame the fake SDK sends goes through here or _finish_conn().
sub _send_frame {
    my ($self, $id, $frame) = @_;
    my $e = $self->{conns}{$id} or return 0;
    if ($e->{rendered}) {
        my $tx = $e->{c}->tx or return 0;
        $tx->send($frame);
        return 1;
    }
    $e->{c}->send($frame);
    $e->{rendered} = 1;
    return 1;
}

# a Close frame: the same rule as _send_frame
sub _finish_conn {
    my ($self, $id, $code, $reason) = @_;
    my $e = $self->{conns}{$id} or return 0;
    my $tx = $e->{c}->tx or return 0;
    if ($e->{rendered}) {
        $tx->finish($code, $reason);
        return 1;
    }
    $e->{c}->finish($code, $reason);
    $e->{rendered} = 1;
    return 1;
}

sub _send {
    my ($self, $id, $data) = @_;
    return $self->_send_frame($id,
        { text => ref $data ? to_json($data) : $data });
}

sub _heartbeat {
    my ($self, $id) = @_;
    my $metrics = $self->{metrics} // {
        cpu_percent => '1.5',
        mem_mb      => '42',
    };

    $self->{seq}++;
    $self->{heartbeats}++;
    $self->_send($id, $self->_envelope('heartbeat', {
        target_id => $self->{target_id},
        status    => $self->{status},
        metrics   => { %$metrics, seq => "$self->{seq}" },
    }));
}

sub _on_text {
    my ($self, $id, $bytes) = @_;
    my ($env, $p, $name, $ok, $message, @r, $ack, $weak);

    $env = try_decode_json($bytes);
    push @{ $self->{received} }, { conn => $id, type => 'text',
        data => $bytes, json => $env };
    note_verbose("fake sdk $self->{target_id} <- $bytes");

    $self->{on_message}->($self, $env, $bytes, $id) if $self->{on_message};

    return unless ref $env eq 'HASH' && ($env->{type} // '') eq 'action';

    push @{ $self->{action_log} }, $env;
    push @{ $self->{action_raw} }, $bytes;
    $self->{executed}{ $env->{msg_id} // '' }++;

    $p    = ref $env->{payload} eq 'HASH' ? $env->{payload} : {};
    $name = $p->{action} // '';

    if ($self->{on_action}) {
        @r = $self->{on_action}->($self, $env, $id);
    }
    if (@r) {
        ($ok, $message) = @r;
    }
    elsif (my $a = $self->{actions}{$name}) {
        ($ok, $message) = @$a;
    }
    elsif ($name eq 'restart') {
        ($ok, $message) = (1, 'ok');
    }
    else {
        ($ok, $message) = (0, "unsupported action: $name");
    }

    return if $self->{no_ack};

    $ack = $self->_envelope('action_ack', {
        action_msg_id => $env->{msg_id},
        success       => $ok ? true : false,
        message       => $message,
    }, (defined $env->{trace_id} ? (trace_id => $env->{trace_id}) : ()));
    push @{ $self->{acks} }, $ack;
    push @{ $self->{acks_raw} }, to_json($ack);

    if ($self->{ack_delay} > 0) {
        $weak = $self;
        weaken $weak;
        Mojo::IOLoop->timer($self->{ack_delay} => sub {
            $weak->_send($id, $ack) if $weak;
        });
        return;
    }
    $self->_send($id, $ack);
}


# --- test-facing API ----------------------------------------------------

# send an event to every agent connection; returns the event's msg_id
sub emit_event {
    my ($self, $name, $data) = @_;
    my $env = $self->_envelope('event', {
        target_id  => $self->{target_id},
        event_name => $name,
        data       => $data,
    });
    $self->_send($_, $env) for keys %{ $self->{conns} };
    return $env->{msg_id};
}

# send a heartbeat now to every agent connection
sub heartbeat {
    my ($self) = @_;
    $self->_heartbeat($_) for keys %{ $self->{conns} };
    return $self;
}

# send any text (or a hashref as JSON) to every agent connection
sub send_all {
    my ($self, $data) = @_;
    my $n = 0;
    $n += $self->_send($_, $data) for keys %{ $self->{conns} };
    return $n;
}

# send a binary message to every agent connection
sub send_all_binary {
    my ($self, $bytes) = @_;
    my $n = 0;
    $n += $self->_send_frame($_, { binary => $bytes })
        for keys %{ $self->{conns} };
    return $n;
}

# ids of the open agent connections, oldest first
sub conn_ids {
    my ($self) = @_;
    my @ids = sort { $a <=> $b } keys %{ $self->{conns} };
    return @ids;
}

# the Mojolicious controller of one agent connection (for anything the
# methods here do not cover)
sub controller {
    my ($self, $id) = @_;
    my $e = $self->{conns}{$id} or return undef;
    return $e->{c};
}

# send text (or a hashref as JSON) on one agent connection; false if it
# is not open
sub send_to {
    my ($self, $id, $data) = @_;
    return $self->_send($id, $data);
}

sub send_binary_to {
    my ($self, $id, $bytes) = @_;
    return $self->_send_frame($id, { binary => $bytes });
}

# raw frames [fin, rsv1, rsv2, rsv3, opcode, payload] on one connection
# (fragmented messages, pings, bad frames); the server does not mask
sub send_frames_to {
    my ($self, $id, @frames) = @_;
    $self->{conns}{$id} or return 0;
    $self->_send_frame($id, $_) for @frames;
    return 1;
}

# the same frames on every agent connection; returns how many got them
sub send_frames {
    my ($self, @frames) = @_;
    my $n = 0;
    $n += $self->send_frames_to($_, @frames) for $self->conn_ids;
    return $n;
}

# close one connection with a Close frame, or abruptly (TCP) when $code
# is undef
sub close_conn {
    my ($self, $id, $code, $reason) = @_;
    my $e = $self->{conns}{$id} or return 0;
    return $self->_finish_conn($id, $code, $reason) if defined $code;
    my $stream = $e->{c}->tx && Mojo::IOLoop->stream($e->{c}->tx->connection);
    $stream->close if $stream;
    $self->_forget($id);
    return 1;
}

# { conn, code, reason } for every agent connection that ended, in order
# (code 1006 when it ended without a Close frame)
sub closes { @{ $_[0]{closes} } }

# the same for the connections @ids only (those of them that ended)
sub closes_of {
    my ($self, @ids) = @_;
    my %want = map { $_ => 1 } @ids;
    my @c = grep { $want{ $_->{conn} } } @{ $self->{closes} };
    return @c;
}

# wait until every connection of @$ids ended; true on success.  Take the
# ids from conn_ids before the event that should close them.
sub wait_closes {
    my ($self, $ids, $timeout) = @_;
    return wait_for(sub { $self->closes_of(@$ids) >= @$ids },
        $timeout // default_timeout()) ? 1 : 0;
}

sub set {
    my ($self, %opt) = @_;
    $self->{$_} = $opt{$_} for keys %opt;
    return $self;
}

sub connections { scalar keys %{ $_[0]{conns} } }

sub wait_connections {
    my ($self, $n, $timeout) = @_;
    return wait_for(sub { $self->connections >= $n },
        $timeout // default_timeout()) ? 1 : 0;
}

sub actions    { @{ $_[0]{action_log} } }
sub actions_raw { @{ $_[0]{action_raw} } }
sub received   { @{ $_[0]{received} } }

# the messages received on one agent connection, in order
sub received_on {
    my ($self, $id) = @_;
    my @m = grep { $_->{conn} == $id } @{ $self->{received} };
    return @m;
}

# the last message received on any connection ({ conn, type, data, json
# }), or undef
sub last_received { $_[0]{received}[-1] }
sub acks       { @{ $_[0]{acks} } }
sub acks_raw   { @{ $_[0]{acks_raw} } }

# the bytes of the ack the fake SDK sent for one action, or undef
sub ack_raw_of {
    my ($self, $action_msg_id) = @_;
    my $i = 0;
    for my $k (@{ $self->{acks} }) {
        return $self->{acks_raw}[$i]
            if ($k->{payload}{action_msg_id} // '') eq $action_msg_id;
        $i++;
    }
    return undef;
}
sub handshakes { @{ $_[0]{handshakes} } }
sub rejected   { $_[0]{rejected} }
sub accepted   { $_[0]{accepted} }
sub heartbeats { $_[0]{heartbeats} }

sub executed {
    my ($self, $msg_id) = @_;
    return $self->{executed}{$msg_id} // 0;
}

# wait until $n actions (in total) have arrived; true on success
sub wait_actions {
    my ($self, $n, $timeout) = @_;
    return wait_for(sub { @{ $self->{action_log} } >= $n },
        $timeout // default_timeout()) ? 1 : 0;
}

sub DESTROY {
    my ($self) = @_;
    local $@;
    eval {
        if (my $d = $self->{daemon}) {
            Mojo::IOLoop->remove($_) for @{ $d->acceptors };
        }
        for my $e (values %{ $self->{conns} }) {
            Mojo::IOLoop->remove($e->{timer}) if $e->{timer};
        }
    };
}


1;
