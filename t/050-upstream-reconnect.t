# Reconnecting to SDKs: an SDK that is down is retried with exponential
# backoff (not in a tight loop); an SDK that restarts, drops the TCP
# connection or stops answering pings is reconnected and its heartbeats
# flow again; panels are told with target_status up/down.  The log says
# what failed in words, once per outage (not per attempt), and the end of
# the outage once, at the same level (error).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Mojo::IOLoop;
use Time::HiRes qw(time);

# Instances made inside subtests are kept until the end of the file, so
# that the final check of the harness (every error.log clean, no forced
# stop) covers them too: it only sees instances that are still alive.
my @KEEP;

sub instance {
    my $i = Test::AMonitor->new(@_);
    push @KEEP, $i;
    return $i;
}


my $PANEL = 'location = /ws/panel { amonitor_panel on; }';

# a TCP server that closes every connection as soon as it is accepted,
# recording the accept times: each is one connection attempt of the agent
sub closing_server {
    my ($port) = @_;
    my $srv = { times => [] };
    $srv->{id} = Mojo::IOLoop->server({ address => '127.0.0.1',
        port => $port }, sub {
        my ($loop, $stream) = @_;
        push @{ $srv->{times} }, time;
        $stream->close;
    });
    return $srv;
}

sub gaps {
    my @t = @_;
    return map { $t[$_] - $t[$_ - 1] } 1 .. $#t;
}

sub mean {
    my $s = 0;
    $s += $_ for @_;
    return @_ ? $s / @_ : 0;
}

subtest 'an SDK that fails every attempt is retried with growing delays'
    => sub {
    my $t = instance;
    my $srv = closing_server($t->port(1));
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 800ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => $PANEL,
    )->run;
    sleep_loop(4);
    my @t = @{ $srv->{times} };
    my @g = gaps(@t);
    note(sprintf('attempts: %d, gaps (ms): %s', scalar @t,
        join(' ', map { int($_ * 1000) } @g)));
    ok(@t >= 6, 'at least 6 attempts in 4s (' . scalar(@t) . ')');
    ok(@t <= 16, 'at most 16 attempts in 4s: no tight loop ('
        . scalar(@t) . ')');
    my @first = @g[0 .. 2];
    my @last = @g[-3 .. -1];
    ok(mean(@last) > 3 * mean(@first), sprintf('later delays are longer '
        . '(first three %.0fms, last three %.0fms on average)',
        1000 * mean(@first), 1000 * mean(@last)));
    ok(!grep({ $_ < 0.015 } @g), 'no two attempts closer than 15ms '
        . '(the minimum 50ms, jitter to half)');
    ok(!grep({ $_ > 1.0 } @g), 'no delay above the 800ms maximum (plus '
        . 'slack)');
    ok((grep { $_ >= 0.35 } @last) == 3,
        'once capped, the delays are between half and all of 800ms');
    error_log_like(qr/\[error\] .*amonitor: SDK closed the connection during the handshake.*, upstream: a, peer: ws:\/\/127\.0\.0\.1:\d+\//,
        'each failure is logged at error, naming the upstream');
    $t->stop;
    Mojo::IOLoop->remove($srv->{id});
};

subtest 'an SDK that is down (connection refused) is retried with backoff'
    => sub {
    my $t = instance;
    my $port = $t->port(1);    # locked, nobody listens
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 400ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => $PANEL . "\nlocation = /status { amonitor_status; }",
    )->run;
    sleep_loop(2);
    # delays: 25-50, 50-100, 100-200, 200-400ms, then 200-400ms each
    my $st = decode_json($t->http_get('/status')->{body});
    my $n = $st->{targets}[0]{failures} // 0;
    ok($n >= 4 && $n <= 14, "between 4 and 14 refused attempts in 2s ($n)");
    error_log_like(qr/\[error\] .*amonitor: cannot connect to the SDK: connection refused while connecting to an amonitor SDK, upstream: a, peer: ws:\/\/127\.0\.0\.1:\d+\//,
        'a refused connection is logged at error in words, naming the '
        . 'upstream');
    is($t->log_count(qr/\[error\]/), 1, "logged once, not once per attempt "
        . "($n attempts)");
    no_error_log(qr/(?:send|connect|recv)\(\) failed/,
        'nginx\'s own lines about the socket are not there');

    # it comes up: the agent connects within the maximum delay
    $t->mark_log;
    my $sdk = fake_sdk(port => $port, target_id => 'a',
        heartbeat_interval => 0);
    my $up = time;
    ok($sdk->wait_connections(1, 2), 'the agent connects once the SDK is up');
    ok(time - $up < 1.0, sprintf('within the 400ms maximum delay (%.2fs)',
        time - $up));
    ok(wait_error_log(qr/\[error\] .*amonitor: connected to the SDK again after (\d+) failed attempts in \d+ s.*upstream: a/, 2),
        'the end of the outage is logged once, at error like its start');
    my ($att) = $t->read_error_log =~ /again after (\d+) failed attempts/;
    ok(($att // 0) >= $n, "with the number of attempts (" . ($att // '?')
        . " >= $n)");
    is($t->log_count(qr/connected to the SDK/), 1, 'once');
    $t->stop;
    $sdk->stop;
};

subtest 'SDK restart: target_status down then up, heartbeats flow again'
    => sub {
    my $t = instance;
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0.1);
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 300ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => $PANEL,
    )->run;
    ok($sdk->wait_connections(1), 'connected');
    my $p = $t->panel('/ws/panel');
    ok($p->recv_type('heartbeat', target_id => 'a'), 'heartbeats reach the '
        . 'panel');

    $t->mark_log;
    $sdk->stop;    # close 1001, stop listening
    my $down = $p->recv_type('target_status', timeout => 3);
    ok($down, 'the panel is told');
    my $pl = $down ? $down->{json}{payload} : {};
    is($pl->{state}, 'down', 'state "down"');
    is($pl->{target_id}, 'a', 'target_id of the target');
    is($down && $down->{json}{target_id}, 'a', 'envelope target_id too');
    is($pl->{url}, 'ws://127.0.0.1:' . $t->port(1) . '/', 'and its URL');
    ok($down && length($down->{json}{msg_id} // ''), 'with a msg_id');
    like($down && $down->{json}{timestamp}, qr/^\d{13}$/,
        'with a timestamp in ms');
    error_log_like(qr/\[warn\] .*amonitor: SDK closed the connection with 1001.*upstream: a/,
        'the close by the SDK is logged at warn with its code');

    # an attempt refused while it is down, before the restart
    ok(wait_error_log(qr/\[error\] .*amonitor: cannot connect to the SDK: connection refused.*upstream: a/),
        'the restart\'s refused attempts are logged once');
    $p->clear;
    $sdk->start;
    ok($sdk->wait_connections(1, 3), 'the agent reconnects after the restart');
    my $up = $p->recv_type('target_status', timeout => 3);
    is($up && $up->{json}{payload}{state}, 'up', 'target_status "up"');
    my $hb = $p->recv_type('heartbeat', timeout => 3);
    ok($hb, 'heartbeats flow again');
    ok(wait_error_log(qr/\[error\] .*amonitor: connected to the SDK again after \d+ failed attempts/, 2),
        'and the reconnect, at the same level');
    $p->close(1000);
    $t->stop;
    $sdk->stop;
};

subtest 'SDK drops the TCP connection (workers => 2): every worker '
    . 'reconnects' => sub {
    my $t = instance(workers => 2);
    my $sdk = fake_sdk(port => $t->port(1), target_id => 'a',
        heartbeat_interval => 0.1);
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 300ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => $PANEL,
    )->run;
    ok($sdk->wait_connections(2), 'two agent connections');
    my $p = $t->panel('/ws/panel');
    ok($p->recv_type('heartbeat'), 'heartbeats reach the panel');

    $t->mark_log;
    my $accepted = $sdk->accepted;
    my $drop = time;
    $sdk->drop_all;
    my $down = $p->recv_type('target_status', state => 'down', timeout => 3);
    ok($down, 'the panel gets target_status down');
    ok(wait_for(sub { $sdk->accepted >= $accepted + 2 }, 3),
        'both workers reconnect');
    ok(time - $drop < 1.0, sprintf('within a second (%.2fs)', time - $drop));
    my $up = $p->recv_type('target_status', state => 'up', timeout => 3);
    ok($up, 'then target_status up');
    $p->clear;
    ok($p->recv_type('heartbeat', timeout => 3), 'heartbeats flow again');
    error_log_like(qr/\[error\] .*amonitor: peer closed the connection without a close frame.*upstream: a/,
        'the drop is logged at error, naming the upstream');
    $p->close(1000);
    $t->stop;
    $sdk->stop;
};

subtest 'an SDK that stops answering pings is closed with 1001 and '
    . 'reconnected' => sub {
    my $t = instance;
    my (@conns, $state);
    # answers the handshake, then neither reads nor writes anything
    my $id = Mojo::IOLoop->server({ address => '127.0.0.1',
        port => $t->port(1) }, sub {
        my ($loop, $stream) = @_;
        my $c = { stream => $stream, buf => '', frames => '', closed => 0 };
        push @conns, $c;
        $stream->timeout(0);
        $stream->on(close => sub { $c->{closed} = time });
        $stream->on(read => sub {
            my ($st, $bytes) = @_;
            if ($c->{open}) {
                $c->{frames} .= $bytes;
                return;
            }
            $c->{buf} .= $bytes;
            return unless $c->{buf} =~ /\r\n\r\n/;
            my ($key) = $c->{buf} =~ /^Sec-WebSocket-Key:\s*(\S+)/mi;
            $c->{open} = time;
            $st->write("HTTP/1.1 101 Switching Protocols\r\n"
                . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                . 'Sec-WebSocket-Accept: ' . ws_accept_key($key // '')
                . "\r\n\r\n");
        });
    });
    $t->write_config(
        http_config => "amonitor_zone amonitor 1m;\n"
            . "amonitor_reconnect 50ms 300ms;\n"
            . "amonitor_ping 300ms;\n"
            . "amonitor_target a ws://127.0.0.1:%%PORT_1%%/;",
        config => $PANEL,
    )->run;
    ok(wait_for(sub { @conns && $conns[0]{closed} }, 4),
        'the agent closed the silent connection');
    my $c = $conns[0];
    my $took = ($c->{closed} // time) - ($c->{open} // time);
    ok($took > 0.25 && $took < 2, sprintf('after about two ping intervals '
        . '(%.2fs)', $took));
    # the agent's frames: a ping (0x89, masked), then a close 1001
    my $f = $c->{frames};
    ok(length $f >= 2 && ord(substr($f, 0, 1)) == 0x89,
        'the agent sent a ping first');
    ok((ord(substr($f, 1, 1)) & 0x80), 'masked, as a client must');
    # walk the frames (short, masked) rather than search for a 0x88 byte,
    # which a masking key or a masked payload may contain too
    my ($close, $at) = (-1, 0);
    while ($at + 6 <= length $f) {
        if (ord(substr($f, $at, 1)) == 0x88) {
            $close = $at;
            last;
        }
        $at += 6 + (ord(substr($f, $at + 1, 1)) & 0x7f);
    }
    ok($close > 0, 'then a close frame');
    if ($close > 0 && length($f) >= $close + 8) {
        my $key = substr($f, $close + 2, 4);
        my $len = ord(substr($f, $close + 1, 1)) & 0x7f;
        my $pl = substr($f, $close + 6, $len) ^ substr($key x 40, 0, $len);
        is(unpack('n', $pl), 1001, 'with 1001');
    }
    else {
        fail('with 1001');
    }
    ok(wait_for(sub { @conns >= 2 }, 3), 'and reconnected');
    error_log_like(qr/\[error\] .*amonitor: no answer to ping within 300 ms.*upstream: a/,
        'the dead SDK is logged at error, naming the upstream');
    $t->stop;
    Mojo::IOLoop->remove($id);
};

done_testing();
