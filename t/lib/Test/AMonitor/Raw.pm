package Test::AMonitor::Raw;

# Raw sockets for traffic no well-behaved client sends: hand-built
# handshakes and frames (bad masks, RSV bits, lying lengths), plain HTTP.
# Sockets are non-blocking underneath; every wait spins the Mojo loop so
# fake SDKs keep running while a test reads a raw socket.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes ();
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha1_base64);
use Socket qw(SOL_SOCKET SO_RCVBUF SO_SNDBUF IPPROTO_TCP TCP_NODELAY
    inet_aton pack_sockaddr_in);
use Test::AMonitor::Util qw(default_timeout wait_for note_verbose);

our @EXPORT_OK = qw(raw_connect raw_ws_connect raw_send raw_read
    raw_read_frame raw_http http_request parse_http_response ws_frame
    ws_accept_key raw_eof slow_panel storm_open storm_read raw_sdk_listen
    raw_sdk_accept %WS_OP);
use Exporter 'import';

our %WS_OP = (
    cont   => 0x0,
    text   => 0x1,
    binary => 0x2,
    close  => 0x8,
    ping   => 0x9,
    pong   => 0xa,
);

my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';


# the read buffer of a raw socket lives in the glob's hash
sub _bufref { \${ *{ $_[0] } }{amon_rbuf} }

# raw_connect($port, %opt): connected non-blocking socket to 127.0.0.1
#   opt: host, rcvbuf (bytes, set before connect), sndbuf, timeout,
#   tls (1: a TLS client on it, the server's certificate not verified)
sub raw_connect {
    my ($port, %opt) = @_;
    my ($s, $addr, $ok);

    $s = IO::Socket::INET->new(Proto => 'tcp', Blocking => 0)
        or croak "socket: $!";
    $s->setsockopt(SOL_SOCKET, SO_RCVBUF, $opt{rcvbuf}) if $opt{rcvbuf};
    $s->setsockopt(SOL_SOCKET, SO_SNDBUF, $opt{sndbuf}) if $opt{sndbuf};
    $s->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);

    $addr = pack_sockaddr_in($port, inet_aton($opt{host} // '127.0.0.1'));
    if (!connect($s, $addr)) {
        croak "connect to port $port: $!"
            unless $! == EINPROGRESS || $! == EAGAIN;
        $ok = wait_for(sub {
            IO::Select->new($s)->can_write(0) ? 1 : 0;
        }, $opt{timeout} // default_timeout());
        croak "connect to port $port timed out" unless $ok;
        my $err = $s->sockopt(Socket::SO_ERROR());
        if ($err) {
            $! = $err;
            croak "connect to port $port: $!";
        }
    }
    if ($opt{tls}) {
        require IO::Socket::SSL;
        $s->blocking(1);
        IO::Socket::SSL->start_SSL($s, SSL_verify_mode => 0)
            or croak "TLS to port $port: $IO::Socket::SSL::SSL_ERROR";
        $s->blocking(0);
    }
    ${ _bufref($s) } = '';
    return $s;
}

# write all of $bytes; returns the number of bytes written (less than
# length($bytes) if the peer stopped reading for $timeout seconds or the
# connection broke)
sub raw_send {
    my ($s, $bytes, $timeout) = @_;
    my ($off, $n, $len);

    $off = 0;
    $len = length $bytes;
    wait_for(sub {
        for (;;) {
            return 1 if $off >= $len;
            local $SIG{PIPE} = 'IGNORE';
            $n = syswrite($s, $bytes, $len - $off, $off);
            if (defined $n) {
                $off += $n;
                next;
            }
            return 0 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            return 1;    # broken: stop trying
        }
    }, $timeout // default_timeout());
    return $off;
}

# read what is available into the socket's buffer; returns 0 on EOF or
# error, 1 otherwise
sub _fill {
    my ($s) = @_;
    my ($n, $chunk);

    for (;;) {
        $n = sysread($s, $chunk, 65536);
        if (defined $n && $n > 0) {
            ${ _bufref($s) } .= $chunk;
            next;
        }
        return 0 if defined $n;    # EOF
        return 1 if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return 0;
    }
}

# true once the peer has closed the connection and the buffer is empty
sub raw_eof {
    my ($s) = @_;
    return 0 if length ${ _bufref($s) };
    return _fill($s) ? 0 : (length ${ _bufref($s) } ? 0 : 1);
}

# raw_read($s, $n, $timeout): up to $n bytes (at least one) or undef on
# timeout; '' on EOF
sub raw_read {
    my ($s, $n, $timeout) = @_;
    my $eof = 0;

    wait_for(sub {
        $eof = !_fill($s);
        return length(${ _bufref($s) }) || $eof;
    }, $timeout // default_timeout());
    my $buf = _bufref($s);
    return substr($$buf, 0, $n // 65536, '') if length $$buf;
    return $eof ? '' : undef;
}

sub _read_until {
    my ($s, $cond, $timeout) = @_;
    my $eof = 0;
    wait_for(sub {
        return 1 if $cond->();
        $eof = !_fill($s);
        return $cond->() || $eof;
    }, $timeout // default_timeout());
    return $eof;
}

sub ws_accept_key {
    my ($key) = @_;
    my $h = sha1_base64($key . $GUID);
    return $h . '=' x ((4 - length($h) % 4) % 4);
}

# raw_ws_connect($port, $path, %headers) -> ($sock, $response_text)
#   headers override the defaults (a value of undef removes a header);
#   keys starting with '-' are options: -rcvbuf, -sndbuf, -timeout,
#   -method, -version ('HTTP/1.1'), -key, -body (bytes sent after the
#   header in the same write).
#   $sock is undef unless the answer is "101" with the right accept key.
sub raw_ws_connect {
    my ($port, $path, %h) = @_;
    my (%opt, $s, $key, @order, %hdr, $req, $resp, $eof);

    for my $k (keys %h) {
        $opt{ substr($k, 1) } = delete $h{$k} if $k =~ /^-/;
    }
    $key = $opt{key} // encode_base64(
        join('', map { chr(int(rand(256))) } 1 .. 16), '');

    @order = ('Host', 'Upgrade', 'Connection', 'Sec-WebSocket-Key',
        'Sec-WebSocket-Version');
    %hdr = (
        'host'                  => "127.0.0.1:$port",
        'upgrade'               => 'websocket',
        'connection'            => 'Upgrade',
        'sec-websocket-key'     => $key,
        'sec-websocket-version' => '13',
    );
    for my $k (sort keys %h) {
        push @order, $k unless exists $hdr{ lc $k };
        $hdr{ lc $k } = $h{$k};
    }

    $req = sprintf("%s %s %s\r\n", $opt{method} // 'GET', $path // '/',
        $opt{version} // 'HTTP/1.1');
    for my $k (@order) {
        next unless defined $hdr{ lc $k };
        $req .= "$k: $hdr{lc $k}\r\n";
    }
    $req .= "\r\n";
    $req .= $opt{body} if defined $opt{body};

    $s = raw_connect($port, rcvbuf => $opt{rcvbuf}, sndbuf => $opt{sndbuf},
        timeout => $opt{timeout}, tls => $opt{tls});
    raw_send($s, $req, $opt{timeout});
    note_verbose("raw ws handshake to $port:\n$req");

    $eof = _read_until($s, sub { index(${ _bufref($s) }, "\r\n\r\n") >= 0 },
        $opt{timeout} // default_timeout());
    my $end = index(${ _bufref($s) }, "\r\n\r\n");
    if ($end < 0) {
        $resp = substr(${ _bufref($s) }, 0, length ${ _bufref($s) }, '');
        return (undef, $resp);
    }
    $resp = substr(${ _bufref($s) }, 0, $end + 4, '');

    if ($resp =~ m{^HTTP/1\.1 101 }
        && $resp =~ /^Sec-WebSocket-Accept:\s*(\S+)\s*$/mi
        && $1 eq ws_accept_key($key))
    {
        return wantarray ? ($s, $resp) : $s;
    }

    # read a body, if any, for the caller to see
    _read_until($s, sub { 0 }, 0.2) unless $eof;
    $resp .= substr(${ _bufref($s) }, 0, length ${ _bufref($s) }, '');
    return wantarray ? (undef, $resp) : undef;
}

# a panel that never reads: a raw WebSocket with a tiny receive buffer
sub slow_panel {
    my ($port, $path, %h) = @_;
    $h{-rcvbuf} //= 4096;
    return raw_ws_connect($port, $path, %h);
}

# raw_sdk_listen($port): a non-blocking listening socket on 127.0.0.1
# for an SDK the test plays by hand
sub raw_sdk_listen {
    my ($port) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $port, Listen => 5, Proto => 'tcp', ReuseAddr => 1,
        Blocking => 0) or croak "listen on $port: $!";
    return $l;
}

# raw_sdk_accept($listener, $timeout): the next agent connection, its
# upgrade request answered with a 101 (then the test has the socket to
# itself: it may never read again); undef if none came in time
sub raw_sdk_accept {
    my ($l, $timeout) = @_;
    my ($c, $key);

    wait_for(sub { $c = $l->accept; defined $c }, $timeout // default_timeout())
        or return undef;
    $c->blocking(0);
    _read_until($c, sub { (${ _bufref($c) } // '') =~ /\r\n\r\n/ },
        default_timeout());
    ($key) = (${ _bufref($c) } // '') =~ /^Sec-WebSocket-Key:\s*(\S+)/mi;
    return undef unless defined $key;
    ${ _bufref($c) } = '';
    raw_send($c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        . "Connection: Upgrade\r\nSec-WebSocket-Accept: "
        . ws_accept_key($key) . "\r\n\r\n");
    return $c;
}

# A reconnect storm: $n connections to $port first (nginx accepts them
# one per pass), then, half a second later, the upgrade request to $path
# on each at once.  Returns the sockets.
sub storm_open {
    my ($port, $n, $path) = @_;
    my @s;
    for (1 .. $n) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp') or die "connect: $!";
        push @s, $c;
    }
    Time::HiRes::sleep(0.5);
    for my $c (@s) {
        syswrite($c, "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
            . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            . "Sec-WebSocket-Version: 13\r\n\r\n");
    }
    return @s;
}

# What one storm socket received within $timeout seconds, until $until
# (a regex) matches it or the server closes: ($bytes, $eof)
sub storm_read {
    my ($c, $timeout, $until) = @_;
    my ($buf, $data, $eof) = ('', '', 0);
    my $end = Time::HiRes::time() + $timeout;
    $c->blocking(0);
    while (Time::HiRes::time() < $end) {
        my $n = sysread($c, $buf, 65536);
        if (defined $n && $n == 0) { $eof = 1; last }
        $data .= $buf if $n;
        last if $until && $data =~ $until;
        Time::HiRes::sleep(0.01) unless $n;
    }
    return ($data, $eof);
}

# ws_frame(opcode => 'text'|'binary'|...|number, payload => $bytes,
#          fin => 1, mask => 1, rsv => 0 (3 bits: 4=RSV1 2=RSV2 1=RSV3),
#          len_form => 'min'|'16'|'64', len => declared length override,
#          mask_key => 4 bytes, close_code => N (prepended to payload))
sub ws_frame {
    my (%a) = @_;
    my ($op, $payload, $fin, $mask, $rsv, $form, $len, $key, $b, $i);

    $op = $a{opcode} // 'text';
    $op = $WS_OP{$op} // croak "unknown opcode $op" if $op !~ /^\d+$/;
    $payload = $a{payload} // '';
    $payload = pack('n', $a{close_code}) . $payload
        if defined $a{close_code};
    $fin  = $a{fin}  // 1;
    $mask = $a{mask} // 1;
    $rsv  = $a{rsv}  // 0;
    $form = $a{len_form} // 'min';
    $len  = $a{len} // length $payload;

    $b = chr(($fin ? 0x80 : 0) | (($rsv & 7) << 4) | ($op & 0x0f));

    if ($form eq 'min') {
        $form = $len < 126 ? '7' : $len < 65536 ? '16' : '64';
    }
    if ($form eq '7') {
        $b .= chr(($mask ? 0x80 : 0) | $len);
    }
    elsif ($form eq '16') {
        $b .= chr(($mask ? 0x80 : 0) | 126) . pack('n', $len);
    }
    elsif ($form eq '64') {
        $b .= chr(($mask ? 0x80 : 0) | 127) . pack('Q>', $len);
    }
    else {
        croak "len_form must be min, 7, 16 or 64";
    }

    if ($mask) {
        $key = $a{mask_key} // pack('N', int(rand(2**32)));
        $b .= $key;
        $payload = _mask($payload, $key);
    }
    return $b . $payload;
}

sub _mask {
    my ($data, $key) = @_;
    my $n = length $data;
    my $k = $key x (int($n / 4) + 1);
    return $data ^ substr($k, 0, $n);
}

# raw_read_frame($s, $timeout) -> { fin, rsv, opcode, masked, payload,
#   close_code, close_reason } for one frame, { eof => 1 } when the peer
#   closed the connection first, undef on timeout
sub raw_read_frame {
    my ($s, $timeout) = @_;
    my ($f, $eof);

    $eof = _read_until($s, sub { $f = _parse_frame($s) },
        $timeout // default_timeout());
    return $f if $f;
    return { eof => 1 } if $eof && !length ${ _bufref($s) };
    return undef;
}

sub _parse_frame {
    my ($s) = @_;
    my $buf = _bufref($s);
    my ($b0, $b1, $len, $off, $key, $payload, %f);

    return undef if length $$buf < 2;
    ($b0, $b1) = unpack('CC', $$buf);
    $len = $b1 & 0x7f;
    $off = 2;
    if ($len == 126) {
        return undef if length $$buf < 4;
        $len = unpack('n', substr($$buf, 2, 2));
        $off = 4;
    }
    elsif ($len == 127) {
        return undef if length $$buf < 10;
        $len = unpack('Q>', substr($$buf, 2, 8));
        $off = 10;
    }
    if ($b1 & 0x80) {
        return undef if length $$buf < $off + 4;
        $key = substr($$buf, $off, 4);
        $off += 4;
    }
    return undef if length $$buf < $off + $len;

    substr($$buf, 0, $off, '');
    $payload = substr($$buf, 0, $len, '');
    $payload = _mask($payload, $key) if defined $key;

    %f = (
        fin     => ($b0 & 0x80) ? 1 : 0,
        rsv     => ($b0 >> 4) & 7,
        opcode  => $b0 & 0x0f,
        masked  => defined $key ? 1 : 0,
        payload => $payload,
        length  => $len,
    );
    if ($f{opcode} == 8) {
        $f{close_code}   = length $payload >= 2 ? unpack('n', $payload) : undef;
        $f{close_reason} = length $payload > 2 ? substr($payload, 2) : '';
    }
    return \%f;
}

# raw_http($port, $request_text, $timeout) -> everything the server sent
# until it closed the connection (or $timeout passed)
sub raw_http {
    my ($port, $req, $timeout) = @_;
    my $s = raw_connect($port, timeout => $timeout);
    raw_send($s, $req, $timeout);
    _read_until($s, sub { 0 }, $timeout // default_timeout());
    my $r = ${ _bufref($s) };
    close $s;
    return $r;
}

# http_request($port, $method, $uri, headers => {}, body => '', timeout)
#   -> parsed response (see parse_http_response); HTTP/1.1, Connection:
#   close
sub http_request {
    my ($port, $method, $uri, %opt) = @_;
    my ($req, $body, %h);

    $body = $opt{body} // '';
    %h = (Host => "127.0.0.1:$port", Connection => 'close',
        %{ $opt{headers} // {} });
    $h{'Content-Length'} //= length $body if length $body;
    $req = "$method $uri HTTP/1.1\r\n";
    $req .= "$_: $h{$_}\r\n" for grep { defined $h{$_} } sort keys %h;
    $req .= "\r\n$body";
    return parse_http_response(raw_http($port, $req, $opt{timeout}));
}

# { code, status_line, headers => { lc name => value(s joined ', ') },
#   body, raw } from a raw HTTP/1.x response; chunked bodies are decoded
sub parse_http_response {
    my ($raw) = @_;
    my (%h, $head, $body, $code, $line, @lines, $out);

    $raw //= '';
    ($head, $body) = split /\r\n\r\n/, $raw, 2;
    @lines = split /\r\n/, $head // '';
    $line = shift @lines // '';
    ($code) = $line =~ m{^HTTP/\d\.\d\s+(\d{3})};
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    $body //= '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    return { code => $code, status_line => $line, headers => \%h,
        body => $body, raw => $raw };
}


1;
