# The panel handshake on the wire: a valid RFC 6455 upgrade gets 101 with
# the right Sec-WebSocket-Accept; the panel token (Authorization: Bearer,
# or ?token= for browsers) is checked before the upgrade; subprotocol
# amonitor.v1 is selected when offered, also from a second header line;
# a Connection split over lines is one list; a second Sec-WebSocket-Key
# and a request body are refused; frames sent in the same packet as the
# handshake are processed.  Refusals as plain HTTP answers are data
# blocks in t/020-panel-handshake.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

my $KEY = 'dGhlIHNhbXBsZSBub25jZQ==';    # RFC 6455 section 1.3

# --- raw handshakes on one running nginx ------------------------------------

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\namonitor_ping 0;",
    config      => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /ws/auth {
            amonitor_panel on;
            amonitor_panel_token "s3cr t/+&=%";
        }
        location = /plain { return 200 "plain\n"; }
EOC
);
$t->run;
my $port = $t->port(0);

subtest '101 Switching Protocols with the accept key of RFC 6455' => sub {
    $t->mark_log;
    my ($s, $resp) = raw_ws_connect($port, '/ws/panel', -key => $KEY);
    ok($s, 'handshake succeeded') or diag($resp);
    like($resp, qr{^HTTP/1\.1 101 Switching Protocols\r\n}, 'status line');
    like($resp, qr{^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r$}mi,
        'Sec-WebSocket-Accept is the one of RFC 6455 section 1.3');
    like($resp, qr{^Upgrade: websocket\r$}mi, 'Upgrade: websocket');
    like($resp, qr{^Connection: upgrade\r$}mi, 'Connection: upgrade');
    unlike($resp, qr{^Sec-WebSocket-Protocol:}mi,
        'no subprotocol when none was offered');
    unlike($resp, qr{^Content-Length:}mi, 'no Content-Length');
    raw_send($s, ws_frame(opcode => 'close', close_code => 1000));
    my $f = raw_read_frame($s);
    is($f->{opcode}, 8, 'closing handshake answered with a close frame');
    is($f->{close_code}, 1000, 'echoing 1000');
    close $s;
};

subtest 'random keys get their accept keys; header names and tokens are '
    . 'case-insensitive' => sub {
    for my $i (1 .. 5) {
        my ($s, $resp) = raw_ws_connect($port, '/ws/panel');
        ok($s, "handshake $i: accept key matches the random key")
            or diag($resp);
        close $s if $s;
    }
    my ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        Upgrade => 'WebSocket', Connection => 'keep-alive, Upgrade');
    ok($s, 'Upgrade: WebSocket and Connection: keep-alive, Upgrade accepted')
        or diag($resp);
    close $s if $s;
};

subtest 'the subprotocol amonitor.v1 is selected when offered' => sub {
    my ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        'Sec-WebSocket-Protocol' => 'amonitor.v1');
    ok($s, 'handshake with amonitor.v1 offered');
    like($resp, qr{^Sec-WebSocket-Protocol: amonitor\.v1\r$}mi,
        'amonitor.v1 selected');
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        'Sec-WebSocket-Protocol' => 'chat, amonitor.v1, other');
    ok($s, 'handshake with a list of subprotocols');
    like($resp, qr{^Sec-WebSocket-Protocol: amonitor\.v1\r$}mi,
        'amonitor.v1 picked from the list');
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        'Sec-WebSocket-Protocol' => 'chat, superchat');
    ok($s, 'handshake with only unknown subprotocols still succeeds');
    unlike($resp, qr{^Sec-WebSocket-Protocol:}mi,
        'no subprotocol sent back when amonitor.v1 was not offered');
    close $s if $s;

    my ($p, $res) = panel_try_connect($t->ws_url('/ws/panel'),
        protocols => ['amonitor.v1']);
    ok($p, 'a Mojolicious panel offering amonitor.v1 connects');
    is($res->{headers}{'sec-websocket-protocol'}, 'amonitor.v1',
        'and gets amonitor.v1');
    ok($p && $p->ping, 'the connection works (ping/pong)');
    $p->close(1000) if $p;
};

subtest 'headers given in several lines, a body, a later HTTP/1.x' => sub {
    # raw_ws_connect takes one value per name: a CRLF in it adds a line
    my ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        'Sec-WebSocket-Protocol' => "chat\r\nSec-WebSocket-Protocol: "
            . 'amonitor.v1.json');
    ok($s, 'subprotocols in two lines: 101') or diag($resp);
    like($resp, qr{^Sec-WebSocket-Protocol: amonitor\.v1\.json\r$}mi,
        'the one in the second line is selected (one list, RFC 6455 11.3.4)');
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        Connection => "keep-alive\r\nConnection: Upgrade");
    ok($s, 'Connection in two lines, "upgrade" in the second: 101')
        or diag($resp);
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        Connection => "keep-alive\r\nConnection: close");
    like($resp // '', qr{^HTTP/1\.1 400 .*connection header lacks upgrade}s,
        'in neither line: 400');

    $t->mark_log;
    ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        'Sec-WebSocket-Key' => "dGhlIHNhbXBsZSBub25jZQ==\r\n"
            . 'Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==');
    ok(!$s, 'two Sec-WebSocket-Keys: no 101 (RFC 6455 11.3.1)');
    like($resp // '', qr{^HTTP/1\.1 400 .*duplicate Sec-WebSocket-Key}s,
        '400 with the reason');
    error_log_like(qr/\[info\] .*panel handshake refused: duplicate Sec-WebSocket-Key/,
        'logged at info');

    # RFC 6455 11.3.5: the version too may be sent only once, whichever
    # of the two copies says 13
    for my $two (["13\r\nSec-WebSocket-Version: 8", 'after'],
        ["8\r\nSec-WebSocket-Version: 13", 'before'])
    {
        $t->mark_log;
        ($s, $resp) = raw_ws_connect($port, '/ws/panel',
            'Sec-WebSocket-Version' => $two->[0]);
        ok(!$s, "two Sec-WebSocket-Versions, 13 $two->[1] another: no 101");
        like($resp // '', qr{^HTTP/1\.1 400 .*duplicate Sec-WebSocket-Version}s,
            '400 with the reason');
        error_log_like(
            qr/\[info\] .*panel handshake refused: duplicate Sec-WebSocket-Version/,
            'logged at info');
    }
    ($s, $resp) = raw_ws_connect($port, '/ws/panel',
        'Sec-WebSocket-Version' => "13\r\nSec-WebSocket-Version: 13");
    ok(!$s, 'the same version twice: no 101 either');

    for my $body (['Content-Length' => 10], ['Transfer-Encoding' => 'chunked'])
    {
        ($s, $resp) = raw_ws_connect($port, '/ws/panel', @$body);
        ok(!$s, "an upgrade with $body->[0]: no 101");
        like($resp // '', qr{^HTTP/1\.1 400 .*must not have a body}s,
            '400: what comes after the header would be read as frames');
    }
    # the body in the same write as the header: read with it, refused all
    # the same (the discard must not hide it)
    for my $body (['Content-Length' => 5, -body => 'hello'],
        ['Transfer-Encoding' => 'chunked', -body => "5\r\nhello\r\n0\r\n\r\n"])
    {
        ($s, $resp) = raw_ws_connect($port, '/ws/panel', @$body);
        ok(!$s, "an upgrade with $body->[0] and its body in one write: "
            . 'no 101');
        like($resp // '', qr{^HTTP/1\.1 400 .*must not have a body}s,
            'refused with 400');
    }
    ($s, $resp) = raw_ws_connect($port, '/ws/panel', 'Content-Length' => 0);
    ok($s, 'Content-Length: 0 is no body: 101') or diag($resp);
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/panel', -version => 'HTTP/1.2');
    ok($s, 'HTTP/1.2: 101 (RFC 6455 4.1: at least 1.1)') or diag($resp);
    close $s if $s;
};

subtest 'frames sent in the same packet as the handshake are processed'
    => sub {
    my $s = raw_connect($port);
    my $req = "GET /ws/panel HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $KEY\r\nSec-WebSocket-Version: 13\r\n\r\n";
    my $action = '{"msg_id":"same-packet-1","type":"action",'
        . '"target_id":"nobody","payload":{"action":"restart"}}';
    my $bytes = $req . ws_frame(opcode => 'ping', payload => 'early-ping')
        . ws_frame(opcode => 'text', payload => $action);
    is(raw_send($s, $bytes), length $bytes,
        'handshake, ping and action written in one write');

    my $head = '';
    while ($head !~ /\r\n\r\n\z/) {
        my $c = raw_read($s, 1, 5);
        last unless defined $c && length $c;
        $head .= $c;
    }
    like($head, qr{^HTTP/1\.1 101 }, '101 first');
    like($head, qr{^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r$}mi,
        'with the right accept key');

    my $f = raw_read_frame($s);
    is($f && $f->{opcode}, 0xA, 'then a pong');
    is($f && $f->{payload}, 'early-ping', 'with the ping payload');
    is($f && $f->{masked}, 0, 'server frames are not masked');

    $f = raw_read_frame($s);
    is($f && $f->{opcode}, 1, 'then a text frame');
    my $j = $f && try_decode_json($f->{payload});
    is($j && $j->{type}, 'error', 'an error envelope');
    is($j && $j->{msg_id}, 'same-packet-1', "for the action's msg_id");
    is($j && $j->{payload}{code}, 'UNKNOWN_TARGET', 'UNKNOWN_TARGET');
    close $s;
};

subtest 'a handshake split over many small writes succeeds' => sub {
    my $s = raw_connect($port);
    my $req = "GET /ws/panel HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Key: $KEY\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for my $piece ($req =~ /(.{1,7})/gs) {
        raw_send($s, $piece);
        sleep_loop(0.005);
    }
    my $resp = '';
    while ($resp !~ /\r\n\r\n/) {
        my $c = raw_read($s, 65536, 5);
        last unless defined $c && length $c;
        $resp .= $c;
    }
    like($resp, qr{^HTTP/1\.1 101 }, 'the answer is 101');
    close $s;
};

# --- panel token ------------------------------------------------------------

my $TOKEN = 's3cr t/+&=%';
my $TOKEN_Q = 's3cr%20t%2F%2B%26%3D%25';

subtest 'panel token: Authorization: Bearer' => sub {
    $t->mark_log;
    my ($s, $resp) = raw_ws_connect($port, '/ws/auth',
        Authorization => "Bearer $TOKEN");
    ok($s, 'the right token gets 101') or diag($resp);
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/auth',
        Authorization => "bearer $TOKEN");
    ok($s, 'the auth scheme is case-insensitive (RFC 7235)') or diag($resp);
    close $s if $s;

    for my $case (['wrong token', "Bearer s3cr t/+&=X"],
        ['token prefix', 'Bearer s3cr'],
        ['token plus a character', "Bearer ${TOKEN}x"],
        ['Basic scheme', 'Basic czNjcg=='],
        ['scheme only', 'Bearer'],
        ['no Authorization', undef])
    {
        my ($name, $auth) = @$case;
        my ($s2, $r2) = raw_ws_connect($port, '/ws/auth',
            (defined $auth ? (Authorization => $auth) : ()));
        ok(!$s2, "$name: no upgrade");
        my $res = parse_http_response($r2);
        is($res->{code}, 401, "$name: 401");
        like($res->{headers}{'www-authenticate'} // '', qr/^Bearer\b/,
            "$name: WWW-Authenticate: Bearer ...");
        is($res->{body}, "missing or wrong panel token\n",
            "$name: the body says why");
        unlike($r2, qr/^Upgrade:/mi, "$name: no Upgrade header");
    }
    error_log_like(qr/\[info\] .*amonitor: panel rejected: missing or wrong token/,
        'the refusal is logged at info');
};

subtest 'panel token: ?token= for browsers (URL-encoded)' => sub {
    my ($s, $resp) = raw_ws_connect($port, "/ws/auth?token=$TOKEN_Q");
    ok($s, 'the URL-encoded token in the query gets 101') or diag($resp);
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, "/ws/auth?x=1&token=$TOKEN_Q&y=2");
    ok($s, 'among other arguments too') or diag($resp);
    close $s if $s;

    ($s, $resp) = raw_ws_connect($port, '/ws/auth?token=s3cr%20t%2F%2B%26%3DX');
    ok(!$s, 'a wrong query token gets no upgrade');
    is(parse_http_response($resp)->{code}, 401, 'but 401');

    ($s, $resp) = raw_ws_connect($port, '/ws/auth?token=');
    is(parse_http_response($resp)->{code}, 401, 'an empty query token: 401');

    my ($p, $res) = panel_try_connect(
        $t->ws_url("/ws/auth?token=$TOKEN_Q"));
    ok($p, 'a Mojolicious panel with ?token= connects') or diag(explain $res);
    $p->close(1000) if $p;

    ($p, $res) = panel_try_connect($t->ws_url('/ws/auth'),
        headers => { Authorization => "Bearer $TOKEN" });
    ok($p, 'a Mojolicious panel with Authorization connects');
    $p->close(1000) if $p;

    is(panel_handshake_status($t->ws_url('/ws/auth')), 401,
        'a Mojolicious panel without a token gets 401');
};

subtest 'the token is checked before the upgrade headers' => sub {
    my $res = $t->http_get('/ws/auth');
    is($res->{code}, 401, 'a plain GET without a token: 401, not 426');
    $res = $t->http_get('/ws/auth', Authorization => "Bearer $TOKEN");
    is($res->{code}, 426, 'a plain GET with the token: 426');
};

subtest 'other locations are not touched' => sub {
    my $res = $t->http_get('/plain');
    is($res->{code}, 200, 'a location without amonitor_panel answers 200');
    is($res->{body}, "plain\n", 'with its own body');
};

done_testing();
