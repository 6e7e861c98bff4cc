# Upstream connections: every worker dials every configured target, with
# a correct RFC 6455 client handshake (request line with the URL's path,
# Host, key, version), Authorization: Bearer only to the target that has a
# token, and refused handshakes or tokens are logged at error level and
# retried.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Mojo::IOLoop;
use MIME::Base64 qw(decode_base64);
use Digest::SHA ();

# Instances made inside subtests are kept until the end of the file, so
# that the final check of the harness (every error.log clean, no forced
# stop) covers them too: it only sees instances that are still alive.
my @KEEP;

sub instance {
    my $i = Test::AMonitor->new(@_);
    push @KEEP, $i;
    return $i;
}


my $COMMON = "amonitor_zone amonitor 1m;\n"
    . "amonitor_reconnect 50ms 300ms;\n"
    . "amonitor_connect_timeout 1s;\n";

# A plain TCP server on the Mojo loop that records each HTTP request head
# and answers it with $answer->($head) (text to write, then close unless
# the answer is undef: then the connection stays open, silent).
sub capture_server {
    my ($port, $answer) = @_;
    my $srv = { requests => [], conns => 0, port => $port };
    $srv->{id} = Mojo::IOLoop->server({ address => '127.0.0.1',
        port => $port }, sub {
        my ($loop, $stream) = @_;
        my $buf = '';
        $srv->{conns}++;
        $stream->timeout(0);
        $stream->on(read => sub {
            my ($st, $bytes) = @_;
            return if !defined $buf;
            $buf .= $bytes;
            return unless $buf =~ /\r\n\r\n/;
            my ($head) = split /\r\n\r\n/, $buf, 2;
            push @{ $srv->{requests} }, $head;
            $buf = undef;
            my $out = $answer->($head);
            return unless defined $out;
            $st->write($out => sub { $st->close });
        });
    });
    return $srv;
}

sub stop_server {
    my ($srv) = @_;
    Mojo::IOLoop->remove($srv->{id}) if $srv->{id};
    $srv->{id} = undef;
}

sub headers_of {
    my ($head) = @_;
    my ($line, @l) = split /\r\n/, $head;
    my %h;
    for (@l) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $h{ lc $k } = $v;
    }
    return ($line, \%h);
}

# --- every worker connects to every target ---------------------------------

for my $n (2, 4) {
    subtest "workers => $n: every SDK sees $n agent connections" => sub {
        my $t = instance(workers => $n);
        my $a = fake_sdk(port => $t->port(1), target_id => 'a',
            heartbeat_interval => 0);
        my $b = fake_sdk(port => $t->port(2), target_id => 'b',
            heartbeat_interval => 0);
        $t->write_config(
            http_config => $COMMON
                . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;\n"
                . "amonitor_target b ws://127.0.0.1:%%PORT_2%%/;",
            config => 'location = /ws/panel { amonitor_panel on; }',
        )->run;
        ok($a->wait_connections($n), "SDK a has $n connections")
            or diag('it has ' . $a->connections);
        ok($b->wait_connections($n), "SDK b has $n connections")
            or diag('it has ' . $b->connections);
        sleep_loop(0.7);
        is($a->connections, $n, "SDK a still has exactly $n");
        is($a->accepted, $n, "SDK a accepted $n in total: no extra dials");
        is($b->accepted, $n, "SDK b accepted $n in total");
        # a worker logs "connected" once it has read the SDK's 101, after
        # the SDK counted the connection
        my $connected = qr/\[info\] .*amonitor: connected to the SDK/;
        wait_for(sub { $t->log_count($connected) >= 2 * $n });
        is($t->log_count($connected), 2 * $n,
            "$n workers x 2 targets \"connected\" lines at info");
        error_log_like(qr/amonitor: connected to the SDK.*, upstream: a, peer: ws:\/\/127\.0\.0\.1:\d+\//,
            'the log line names the upstream and its URL');
        $t->stop;
        $a->stop;
        $b->stop;
    };
}

# --- the client handshake ---------------------------------------------------

subtest 'the handshake request: path from the URL, Host, key, version, '
    . 'Bearer only where configured' => sub {
    my $t = instance;
    my $srv = capture_server($t->port(1), sub { undef });
    my $tok = fake_sdk(port => $t->port(2), target_id => 'tok',
        heartbeat_interval => 0);
    my $plain = fake_sdk(port => $t->port(3), target_id => 'plain',
        heartbeat_interval => 0);
    my $dyn = fake_sdk(port => $t->port(4), target_id => 'dyn',
        heartbeat_interval => 0);
    $t->write_config(
        http_config => $COMMON
            . "amonitor_allow_url ws://127.0.0.1:*;\n"
            . "amonitor_target raw ws://127.0.0.1:%%PORT_1%%/sdk/v1;\n"
            . "amonitor_target tok ws://127.0.0.1:%%PORT_2%%/agent "
            . "token=Tok-123;\n"
            . "amonitor_target plain ws://localhost:%%PORT_3%%;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;

    ok(wait_for(sub { @{ $srv->{requests} } >= 1 }), 'raw SDK got a request');
    my ($line, $h) = headers_of($srv->{requests}[0] // '');
    is($line, 'GET /sdk/v1 HTTP/1.1', 'request line: GET, the URL\'s path, '
        . 'HTTP/1.1');
    is($h->{host}, '127.0.0.1:' . $t->port(1), 'Host: host:port of the URL');
    like($h->{upgrade} // '', qr/^websocket$/i, 'Upgrade: websocket');
    like($h->{connection} // '', qr/\bupgrade\b/i, 'Connection: Upgrade');
    is($h->{'sec-websocket-version'}, '13', 'Sec-WebSocket-Version: 13');
    my $key = $h->{'sec-websocket-key'} // '';
    ok($key =~ m{^[A-Za-z0-9+/]{22}==$} && length(decode_base64($key)) == 16,
        'Sec-WebSocket-Key is 16 bytes in base64');
    ok(!exists $h->{authorization}, 'no Authorization for a target without '
        . 'a token');

    ok($tok->wait_connections(1), 'the token target is connected');
    my @hs = $tok->handshakes;
    is($hs[0]{path}, '/agent', 'its path is used');
    is($hs[0]{headers}{authorization}, 'Bearer Tok-123',
        'Authorization: Bearer <token>');

    ok($plain->wait_connections(1), 'the target without a path connects');
    @hs = $plain->handshakes;
    is($hs[0]{path}, '/', 'no path in the URL: "/"');
    is($hs[0]{headers}{host}, 'localhost:' . $t->port(3),
        'Host is the URL\'s host as written');
    ok(!exists $hs[0]{headers}{authorization},
        'the token of another target is not sent');

    # an on-demand dial of an allowed URL carries no token either
    my $p = $t->panel('/ws/panel');
    $p->send_json({ msg_id => 'dyn-1', type => 'action', target_id => 'dyn',
        payload => { action => 'restart',
            target_url => 'ws://127.0.0.1:' . $t->port(4) . '/' } });
    ok($dyn->wait_connections(1), 'an allowed URL is dialed on demand');
    @hs = $dyn->handshakes;
    ok(@hs && !exists $hs[0]{headers}{authorization},
        'without any Authorization header');
    ok($p->recv_type('action_ack', action_msg_id => 'dyn-1'),
        'and the action is acked');
    $p->close(1000);

    my @auth = grep { exists $_->{headers}{authorization} }
        ($plain->handshakes, $dyn->handshakes);
    is(scalar @auth, 0, 'no handshake but the token target\'s carried a '
        . 'token');
    $t->stop;
    stop_server($srv);
    $_->stop for $tok, $plain, $dyn;
};

# --- refused tokens and handshakes -----------------------------------------

subtest 'an SDK that rejects the token with 4401: logged at error with '
    . '4401, retried' => sub {
    my $t = instance;
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        token => 'right', heartbeat_interval => 0);
    $t->write_config(
        http_config => $COMMON
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/ token=wrong;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;
    ok(wait_for(sub { $sdk->rejected >= 3 }, 5),
        'the agent retries (' . $sdk->rejected . ' rejected attempts)');
    is($sdk->accepted, 0, 'never accepted');
    my @hs = $sdk->handshakes;
    is($hs[0]{headers}{authorization}, 'Bearer wrong',
        'the configured token was presented');
    error_log_like(qr/\[error\] .*amonitor: SDK rejected the agent's token \(close 4401\).*, upstream: a, peer: ws:\/\/127\.0\.0\.1:\d+\//,
        'logged at error with 4401, the upstream and its URL');

    # fix the SDK's side: the next retry succeeds
    $sdk->set(token => 'wrong');
    ok($sdk->wait_connections(1, 5), 'once the SDK accepts the token, the '
        . 'agent connects');
    is($t->log_count(qr/\[error\].*rejected the agent's token/), 1,
        'the rejections are logged once, not once per attempt');
    no_error_log(qr/\[warn\]/, 'no warn line goes with them');
    ok(wait_error_log(qr/\[error\] .*amonitor: connected to the SDK again after \d+ failed attempts/, 2),
        'the end of the outage is logged, at error like its start');
    $t->stop;
    $sdk->stop;
};

subtest 'a handshake refused with 403: logged with the status, retried'
    => sub {
    my $t = instance;
    my $srv = capture_server($t->port(1), sub {
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
            . "Content-Length: 10\r\nConnection: close\r\n\r\nforbidden\n";
    });
    $t->write_config(
        http_config => $COMMON
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/ws;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;
    ok(wait_for(sub { @{ $srv->{requests} } >= 3 }, 5),
        'the agent retries (' . scalar(@{ $srv->{requests} })
        . ' handshakes)');
    error_log_like(qr/\[error\] .*amonitor: SDK refused the handshake: status 403\b.*, upstream: a, peer: ws:\/\/127\.0\.0\.1:\d+\/ws/,
        'logged at error with status 403, the upstream and its URL');
    no_error_log(qr/connected to the SDK/, 'never reported as connected');

    my $s = $t->http_get('/ws/panel');
    ok($s->{code}, 'nginx still answers');
    $t->stop;
    stop_server($srv);
};

subtest 'other bad handshake answers: 200, wrong accept key, garbage' => sub {
    for my $case (
        ['200 OK', "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            qr/status 200/],
        ['a wrong Sec-WebSocket-Accept',
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\n"
            . "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            qr/amonitor: (?:invalid handshake response|SDK refused the handshake)/],
        ['not HTTP', "SSH-2.0-OpenSSH_9.2\r\n\r\n",
            qr/amonitor: (?:invalid handshake response|SDK refused the handshake)/])
    {
        my ($name, $resp, $re) = @$case;
        my $t = instance;
        my $srv = capture_server($t->port(1), sub { $resp });
        $t->write_config(
            http_config => $COMMON
                . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
            config => 'location = /ws/panel { amonitor_panel on; }',
        )->run;
        ok(wait_for(sub { @{ $srv->{requests} } >= 2 }, 5),
            "$name: the agent retries");
        $t->error_log_like(qr/\[error\] .*$re/, "$name: logged at error");
        $t->no_error_log(qr/connected to the SDK/,
            "$name: never reported as connected");
        $t->stop;
        stop_server($srv);
    }
};

subtest 'an SDK that accepts TCP but never answers the handshake: '
    . 'amonitor_connect_timeout' => sub {
    my $t = instance;
    my $srv = capture_server($t->port(1), sub { undef });
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 100ms;\n"
            . "amonitor_connect_timeout 300ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => 'location = /ws/panel { amonitor_panel on; }',
    )->run;
    ok(wait_for(sub { @{ $srv->{requests} } >= 2 }, 3),
        'a second attempt after the first timed out');
    error_log_like(qr/\[error\] .*amonitor: SDK handshake timed out/,
        'the timeout is logged at error');
    $t->stop;
    stop_server($srv);
};

# A 101 with long headers: the agent's handshake buffer starts small and
# grows up to the 8 KiB limit; a longer response is refused.
sub padded_101 {
    my ($head, $pad) = @_;
    my ($key) = $head =~ /^Sec-WebSocket-Key:\s*(\S+)/mi;
    my $accept = Digest::SHA::sha1_base64(
        $key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11') . '=';
    my $out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n";
    my $i = 0;
    while (length($out) < $pad) {
        $out .= sprintf("X-Pad-%04d: %s\r\n", $i++, 'p' x 60);
    }
    return $out . "\r\n";
}

subtest 'a handshake response longer than the first buffer' => sub {
    for my $case ([3000, 1], [7000, 1], [9000, 0]) {
        my ($pad, $good) = @$case;
        my $t = instance;
        my @heads;
        my $id = Mojo::IOLoop->server({ address => '127.0.0.1',
            port => $t->port(1) }, sub {
            my ($loop, $stream) = @_;
            my $buf = '';
            $stream->timeout(0);
            $stream->on(read => sub {
                my ($st, $bytes) = @_;
                return if !defined $buf;
                $buf .= $bytes;
                return unless $buf =~ /\r\n\r\n/;
                my ($head) = split /\r\n\r\n/, $buf, 2;
                push @heads, $head;
                $buf = undef;
                my $out = padded_101($head, $pad);
                # in pieces, so that the agent reads it in several parts
                $st->write(substr($out, 0, 700));
                Mojo::IOLoop->timer(0.05 => sub {
                    $st->write(substr($out, 700));
                });
            });
        });
        $t->write_config(
            http_config => $COMMON
                . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
            config => 'location = /ws/panel { amonitor_panel on; }',
        )->run;
        if ($good) {
            wait_for(sub { 0 }, 1.5);
            is(scalar(@heads), 1, "$pad bytes of headers: one handshake, "
                . 'the connection stays open');
            $t->no_error_log(qr/invalid handshake response/,
                "$pad bytes of headers: accepted");
        } else {
            ok(wait_for(sub { @heads >= 2 }, 5),
                "$pad bytes of headers: refused, and retried");
            $t->error_log_like(
                qr/\[error\] .*invalid handshake response: message too big/,
                "$pad bytes of headers: logged as too big");
        }
        $t->stop;
        Mojo::IOLoop->remove($id);
    }
};

done_testing();
