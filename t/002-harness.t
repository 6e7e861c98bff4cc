# The test harness tested on its own, without the module: the panel client
# talks through a plain nginx WebSocket proxy to the fake SDK, raw frames
# go to the fake SDK directly, and the log checker, port locks, reload
# and nginx -t are exercised.  The data-block runner has its own file,
# t/003-harness-blocks.t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Fcntl qw(:flock);
use POSIX qw(_exit);

my $UUID_RE = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

my $PROXY = <<'EOC';
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
EOC


# --- port locks -------------------------------------------------------------

subtest 'ports are locked per process' => sub {
    my $port = free_port();
    ok(Test::AMonitor::Util::port_locked_here($port), 'lock is held');
    ok(-e "/tmp/amon-test-ports/$port.lock", 'lock file exists');

    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $code = 0;
        open(my $fh, '>>', "/tmp/amon-test-ports/$port.lock") or _exit(3);
        $code |= 1 if flock($fh, LOCK_EX | LOCK_NB);
        for (1 .. 50) {
            $code |= 2 if Test::AMonitor::Util::free_port() == $port;
        }
        _exit($code);
    }
    waitpid($pid, 0);
    is($? >> 8, 0, 'another process can neither lock nor be given the port');

    my %seen;
    my @ports = map { free_port() } 1 .. 20;
    $seen{$_}++ for @ports, $port;
    is(scalar(grep { $seen{$_} > 1 } keys %seen), 0,
        'one process never gets the same port twice');
};


# --- frame builder ----------------------------------------------------------

subtest 'ws_frame encodes RFC 6455 frames' => sub {
    is(ws_frame(opcode => 'text', payload => 'abc', mask => 0),
        "\x81\x03abc", 'short unmasked text frame');
    is(ws_frame(opcode => 'text', payload => 'abc', mask => 0,
        len_form => '16'), "\x81\x7e\x00\x03abc", '16-bit length form');
    is(ws_frame(opcode => 'binary', payload => 'abc', mask => 0,
        len_form => '64'), "\x82\x7f" . "\0" x 7 . "\x03abc",
        '64-bit length form');
    is(ws_frame(opcode => 'text', payload => 'abc',
        mask_key => "\x01\x02\x03\x04"),
        "\x81\x83\x01\x02\x03\x04" . ('abc' ^ "\x01\x02\x03"), 'masking');
    is(ws_frame(opcode => 'text', payload => '', mask => 0, rsv => 4,
        fin => 0), "\x41\x00", 'RSV1 set, FIN clear');
    is(ws_frame(opcode => 'close', close_code => 1000, mask => 0),
        "\x88\x02\x03\xe8", 'close frame with a code');
    is(length(ws_frame(opcode => 'binary', payload => 'x' x 70000,
        mask => 0)), 70000 + 10, 'long payload takes the 64-bit form');
    is(ws_frame(opcode => 'text', payload => 'ab', len => 5, mask => 0),
        "\x81\x05ab", 'declared length can lie');
    is(ws_accept_key('dGhlIHNhbXBsZSBub25jZQ=='),
        's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'accept key of RFC 6455 1.3');
};


# --- log checker --------------------------------------------------------

subtest 'the log checker catches what it must' => sub {
    my $clean = join "\n",
        '2025/01/01 00:00:00 [notice] 1#1: start worker processes',
        '2025/01/01 00:00:00 [error] 2#2: *1 open() "/x" failed',
        '2025/01/01 00:00:00 [warn] 2#2: something',
        '2025/01/01 00:00:00 [debug] 2#2: amonitor payload "alert"';
    is_deeply([scan_log_text($clean)], [], 'error/warn/debug lines pass');

    for my $bad ('2025/01/01 00:00:00 [alert] 1#1: worker process 9 exited '
        . 'on signal 11', '2025/01/01 00:00:00 [crit] 2#2: crit thing',
        '2025/01/01 00:00:00 [emerg] 1#1: bad conf',
        '==123==ERROR: AddressSanitizer: heap-use-after-free on address',
        'src/x.c:10:5: runtime error: signed integer overflow',
        '==123==ERROR: LeakSanitizer: detected memory leaks',
        '==9== ERROR SUMMARY: 3 errors from 3 contexts')
    {
        is_deeply([scan_log_text("$clean\n$bad\n")], [$bad],
            "caught: " . substr($bad, 0, 50));
    }

    my $planted = "$clean\n2025/01/01 [alert] 1#1: planted\n";
    is_deeply([scan_log_text($planted, qr/planted/)], [],
        'ignore patterns are honoured');
    is(scalar(scan_log_text('==9== ERROR SUMMARY: 0 errors from 0 contexts')),
        0, 'a clean valgrind summary passes');
};


# --- nginx with a WebSocket proxy in front of fake SDKs ---------------------

my $t = Test::AMonitor->new(module => 0, workers => 2);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'demo-target-a',
    heartbeat_interval => 0.2);
my $sdk_tok = fake_sdk(port => $t->port(2), target_id => 'demo-target-t',
    heartbeat_interval => 0.2, token => 'sekret');
my $sdk_b = fake_sdk(port => $t->port(3), target_id => 'demo-target-b',
    heartbeat_interval => 0.2, register_url => 'ws://127.0.0.1:1/x',
    actions => { deploy => [0, 'no disk'] });

my %conf = (config => <<"EOC");
        location /hello { return 200 "hello\\n"; }
        location /files/ { root %%PREFIX%%; }
        location /sdk-a/ {
            proxy_pass http://127.0.0.1:%%PORT_1%%/;
$PROXY
        }
        location /sdk-t/ {
            proxy_pass http://127.0.0.1:%%PORT_2%%/;
$PROXY
        }
        location /sdk-b/ {
            proxy_pass http://127.0.0.1:%%PORT_3%%/;
$PROXY
        }
EOC
$t->write_config(%conf)->run;

subtest 'nginx runs in its prefix' => sub {
    is(scalar($t->worker_pids), $t->effective_workers, 'all workers run');
    ok($t->master_pid, 'master pid known');
    like($t->conf_text, $t->valgrind ? qr/^daemon off;$/m : qr/^daemon on;$/m,
        'daemon on (off under valgrind)');
    like($t->conf_text, $t->single_process ? qr/^master_process off;$/m
        : qr/^master_process on;$/m, 'master_process');
    like($t->conf_text, qr/^error_log \Q${\ $t->prefix}\E\/error\.log /m,
        'error log in the prefix');
    unlike($t->conf_text, qr/load_module/, 'no module with module => 0');
    my $r = $t->http_get('/hello');
    is($r->{code}, 200, 'plain location answers');
    is($r->{body}, "hello\n", 'body');
    $t->write_file('files/x.txt', "port %%PORT_1%%\n");
    is($t->http_get('/files/x.txt')->{body}, "port " . $t->port(1) . "\n",
        'write_file fills placeholders');
};

subtest 'error_log helpers read the real log' => sub {
    $t->mark_log;
    is($t->http_get('/files/nothere')->{code}, 404, '404 for a missing file');
    error_log_like(qr/open\(\) ".*nothere" failed/, 'the open() error is logged');
    no_error_log(qr/\[alert\]/, 'no alert');
    $t->mark_log;
    ok(!$t->wait_error_log(qr/nothere/, 0.3), 'mark hides older lines');
    my $copy = $t->read_error_log(all => 1);
    my @before = scan_log_text($copy);
    my @bad = scan_log_text($copy
        . "\n2025/01/01 00:00:00 [alert] 1#1: planted\n");
    is(scalar(@bad), @before + 1,
        'a planted alert in a copy of the log is found');
    like($bad[-1] // '', qr/planted/, 'it is the planted line');
};

subtest 'panel through nginx: heartbeats, actions, acks, events' => sub {
    my $p = $t->panel('/sdk-a/');
    ok($p->is_open, 'handshake through the proxy');

    my $hb = $p->recv_type('heartbeat');
    ok($hb, 'a heartbeat arrives');
    my $j = $hb->{json};
    is($j->{target_id}, 'demo-target-a', 'envelope target_id');
    is($j->{payload}{status}, 'up', 'payload status');
    is($j->{payload}{target_id}, 'demo-target-a', 'payload target_id');
    like($j->{msg_id}, $UUID_RE, 'msg_id is a UUID4');
    like($j->{timestamp}, qr/^\d{13}$/, 'timestamp in milliseconds');
    my $seq = $j->{payload}{metrics}{seq};
    my $hb2 = $p->recv_type('heartbeat');
    ok($hb2 && $hb2->{json}{payload}{metrics}{seq} > $seq,
        'heartbeats keep coming, in order');

    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => 'demo-target-a', trace_id => 'tr-1',
        payload => { action => 'restart', params => { from => 'test' } } });
    my $ack = $p->recv_type('action_ack', action_msg_id => $id);
    ok($ack, 'the ack comes back');
    ok($ack->{json}{payload}{success}, 'restart succeeds');
    is($ack->{json}{payload}{message}, 'ok', 'message');
    like($ack->{json}{msg_id}, $UUID_RE, 'ack has its own msg_id');
    isnt($ack->{json}{msg_id}, $id, 'not the action msg_id');
    is($ack->{json}{trace_id}, 'tr-1', 'trace_id carried');
    is($sdk->executed($id), 1, 'the SDK recorded the action once');
    is(($sdk->actions)[-1]{payload}{params}{from}, 'test', 'params seen');
    is($sdk->ack_raw_of($id), $ack->{data},
        'ack_raw_of: the bytes of the ack, as a plain proxy delivered them');
    is(($sdk->acks_raw)[-1], $ack->{data}, 'acks_raw: the same, last');
    is($sdk->ack_raw_of('no-such-action'), undef, 'ack_raw_of: undef if none');

    my $id2 = uuid4();
    $p->send_json({ msg_id => $id2, type => 'action',
        target_id => 'demo-target-a', payload => { action => 'frobnicate' } });
    $ack = $p->recv_type('action_ack', action_msg_id => $id2);
    ok($ack && !$ack->{json}{payload}{success}, 'unknown action fails');
    is($ack && $ack->{json}{payload}{message}, 'unsupported action: frobnicate',
        'with the example SDK message');

    my $ev = $sdk->emit_event('disk_full', { mount => '/var' });
    my $m = $p->recv_until(sub { ($_->{json}{msg_id} // '') eq $ev });
    ok($m, 'an emitted event reaches the panel');
    is($m && $m->{json}{payload}{event_name}, 'disk_full', 'event_name');
    is($m && $m->{json}{payload}{data}{mount}, '/var', 'event data');

    ok($p->ping('hello'), 'ping through the proxy gets its pong');

    is($sdk->connections, 1, 'the SDK sees one connection');
    $p->close(1000);
    ok(!$p->is_open, 'panel closed');
    ok(wait_for(sub { $sdk->connections == 0 }), 'the SDK saw the close');
    is(($sdk->handshakes)[-1]{headers}{upgrade}, 'websocket',
        'the SDK recorded the handshake headers');
};

subtest 'a fake SDK with a token closes with 4401' => sub {
    my $url = 'ws://127.0.0.1:' . $sdk_tok->port . '/';
    my $p = panel_connect($url);
    is($p->wait_closed, 4401, 'no token: 4401');
    $p = panel_connect($url, headers => { Authorization => 'Bearer wrong' });
    is($p->wait_closed, 4401, 'wrong token: 4401');
    $p = $t->panel('/sdk-t/');
    is($p->wait_closed, 4401, 'no token through nginx: 4401 passes through');
    is($sdk_tok->rejected, 3, 'three rejections recorded');

    $p = panel_connect($url, headers => { Authorization => 'Bearer sekret' });
    ok($p->recv_type('heartbeat'), 'right token: heartbeats');
    ok($p->is_open, 'still open');
    $p->close;
};

subtest 'raw frames against the fake SDK' => sub {
    my ($s, $resp) = raw_ws_connect($sdk->port, '/');
    ok($s, 'raw handshake succeeded');
    like($resp, qr{^HTTP/1\.1 101 }, 'status 101');

    my $f = raw_read_frame($s);
    is($f->{opcode}, 1, 'first frame is text');
    ok(!$f->{masked}, 'server frames are not masked');
    is(decode_json($f->{payload})->{type}, 'heartbeat', 'a heartbeat');

    my $id = uuid4();
    my $text = encode_json({ msg_id => $id, type => 'action',
        target_id => 'demo-target-a', payload => { action => 'restart' } });
    my $half = int(length($text) / 2);
    raw_send($s, ws_frame(opcode => 'text', fin => 0,
        payload => substr($text, 0, $half))
        . ws_frame(opcode => 'ping', payload => 'pp')
        . ws_frame(opcode => 'cont', payload => substr($text, $half)));

    my ($pong, $ack);
    for (1 .. 50) {
        $f = raw_read_frame($s) or last;
        $pong = $f if $f->{opcode} == 0xa;
        if ($f->{opcode} == 1) {
            my $j = decode_json($f->{payload});
            $ack = $j if $j->{type} eq 'action_ack';
        }
        last if $pong && $ack;
    }
    is($pong && $pong->{payload}, 'pp', 'ping between fragments: pong');
    is($ack && $ack->{payload}{action_msg_id}, $id,
        'fragmented action is acked');

    raw_send($s, ws_frame(opcode => 'close', close_code => 1000));
    my $close;
    for (1 .. 20) {
        $f = raw_read_frame($s) or last;
        if (defined $f->{opcode} && $f->{opcode} == 8) {
            $close = $f;
            last;
        }
    }
    is($close && $close->{close_code}, 1000, 'close is echoed');
    ok(wait_for(sub { raw_eof($s) }), 'then the connection ends');
    $f = raw_read_frame($s, 0.5);
    ok($f && $f->{eof}, 'raw_read_frame reports eof');

    my ($bad, $r2) = raw_ws_connect($sdk->port, '/', Upgrade => undef);
    ok(!$bad, 'no Upgrade header: no WebSocket');
    like($r2, qr{^HTTP/1\.1 4\d\d }, 'answered with a 4xx');

    my $slow = slow_panel($sdk->port, '/');
    ok($slow, 'slow panel handshake');
    close $slow if $slow;

    my $raw = raw_http($t->port(0), "GET /hello HTTP/1.0\r\n\r\n");
    like($raw, qr{^HTTP/1\.1 200 .*\r\n\r\nhello\n\z}s, 'raw_http');
};

subtest 'fake SDK options: register, custom results, delays, no ack' => sub {
    my $p = $t->panel('/sdk-b/');
    my $first = $p->recv(5);
    is($first && $first->{json}{type}, 'register', 'register comes first');
    is($first && $first->{json}{payload}{sdk_url}, 'ws://127.0.0.1:1/x',
        'with sdk_url');

    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => 'demo-target-b', payload => { action => 'deploy' } });
    my $ack = $p->recv_type('action_ack', action_msg_id => $id);
    is($ack && $ack->{json}{payload}{message}, 'no disk', 'configured result');

    $sdk_b->set(ack_delay => 0.6);
    $id = uuid4();
    my $t0 = Time::HiRes::time();
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => 'demo-target-b', payload => { action => 'restart' } });
    $ack = $p->recv_type('action_ack', action_msg_id => $id);
    ok($ack && Time::HiRes::time() - $t0 >= 0.5, 'ack_delay delays the ack');

    $sdk_b->set(ack_delay => 0, no_ack => 1);
    $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => 'demo-target-b', payload => { action => 'restart' } });
    ok(!$p->recv_type('action_ack', action_msg_id => $id, timeout => 1),
        'no_ack: no ack');
    ok($sdk_b->wait_actions(3), 'but the action arrived');
    is($sdk_b->executed($id), 1, 'and was recorded');
    $sdk_b->set(no_ack => 0);
    $p->close;
};

subtest 'fake SDK per-connection sends, raw frames and closes' => sub {
    my $p = $t->panel('/sdk-a/');
    ok($p->recv_type('heartbeat'), 'connected');
    my @ids = $sdk->conn_ids;
    is(scalar(@ids), 1, 'one connection id');

    ok($sdk->send_to($ids[0], { type => 'custom', n => 1 }), 'send_to');
    my $m = $p->recv_type('custom');
    is($m && $m->{json}{n}, 1, 'the panel got it');

    ok($sdk->send_frames_to($ids[0], [0, 0, 0, 0, 1, '{"type":"fr'],
        [1, 0, 0, 0, 0, 'ag","n":2}']), 'two fragments');
    $m = $p->recv_type('frag');
    is($m && $m->{data}, '{"type":"frag","n":2}',
        'the panel got one reassembled message');

    $p->send_text('{"type":"from-panel","n":3}');
    ok(wait_for(sub { my $r = $sdk->last_received;
        $r && $r->{data} =~ /from-panel/ }), 'last_received: the message');
    my @on = $sdk->received_on($ids[0]);
    is($on[-1]{data}, '{"type":"from-panel","n":3}',
        'received_on: the same message on that connection');
    is($on[-1]{json}{n}, 3, 'decoded');
    is(scalar($sdk->received_on($ids[0] + 1000)), 0,
        'received_on: nothing on an unknown connection');

    ok(!$sdk->wait_closes(\@ids, 0.2), 'wait_closes: still open');
    ok($sdk->close_conn($ids[0], 4000, 'bye'), 'close one connection');
    is($p->wait_closed, 4000, 'the panel sees code 4000 through nginx');
    ok($sdk->wait_closes(\@ids), 'wait_closes: the close is recorded');
    is(($sdk->closes)[-1]{code}, 4000, 'with its code');
    is_deeply([map { [$_->{conn}, $_->{code}, $_->{reason}] }
        $sdk->closes_of(@ids)], [[$ids[0], 4000, 'bye']],
        'closes_of: that connection, its code and reason');
    ok(!$sdk->send_to($ids[0], 'x'), 'no send on a closed connection');
};

subtest 'fake SDK stop, start and drop' => sub {
    my $p = $t->panel('/sdk-a/');
    ok($p->recv_type('heartbeat'), 'connected');
    $sdk->drop_all;
    is($p->wait_closed, 1006, 'drop_all: the proxied panel ends without a '
        . 'close frame');

    $sdk->stop;
    ok(!eval { raw_connect($sdk->port, timeout => 1); 1 },
        'stopped: connections are refused');
    my ($code) = panel_handshake_status($t->ws_url('/sdk-a/'));
    is($code, 502, 'nginx answers 502 for the stopped SDK');
    $t->ignore_log(qr/connect\(\) failed/);

    $sdk->start;
    $p = $t->panel('/sdk-a/');
    ok($p->recv_type('heartbeat'), 'started again on the same port');
    $sdk->stop;
    is($p->wait_closed, 1001, 'stop closes with 1001');
    $sdk->start;
};

subtest 'nginx -t' => sub {
    my ($st, $out) = $t->nginx_t(config => 'location / { bogus_directive on; }');
    is($st, 1, 'nginx -t fails on a bad config');
    like($out, qr/\[emerg\] unknown directive "bogus_directive" in \S+nginx\.conf:\d+/,
        'with the EMERG text');
    ($st, $out) = $t->nginx_t;
    is($st, 0, 'nginx -t passes on the running config');
    like($out, qr/syntax is ok/, 'syntax is ok');
};

subtest 'reload' => sub {
    plan skip_all => 'nginx without a master cannot reload'
        if $t->single_process;

    my %old = map { $_ => 1 } $t->worker_pids;
    ok($t->reload, 'reload succeeds');
    my @new = $t->worker_pids;
    is(scalar(@new), $t->workers, 'all workers run after reload');
    is(scalar(grep { $old{$_} } @new), 0, 'all of them new');

    $t->ignore_log(qr/unknown directive "bogus_reload"/);
    $t->write_config(config => 'location / { bogus_reload on; }');
    ok(!$t->reload(timeout => 5), 'a reload with a bad config is reported');
    $t->write_config(%conf);
    ok($t->reload, 'a good reload after it works');
    is($t->http_get('/hello')->{code}, 200, 'still serving');
};

subtest 'a stop that needs KILL is a problem' => sub {
    plan skip_all => 'nginx without a master exits at once on QUIT'
        if $t->single_process;
    my $t2 = Test::AMonitor->new(module => 0, stop_timeout => 1);
    $t2->write_config(config => <<"EOC")->run;
        location /sdk-a/ {
            proxy_pass http://127.0.0.1:${\ $sdk->port}/;
$PROXY
        }
EOC
    my $p = $t2->panel('/sdk-a/');
    ok($p->recv_type('heartbeat'), 'proxied panel open');
    my $pid = $t2->master_pid;
    ok(!$t2->stop, 'QUIT cannot finish with an upgraded proxy connection');
    my @problems = $t2->take_problems;
    like($problems[0] // '', qr/did not exit within/, 'recorded as a problem');
    ok(!kill(0, $pid) || !-d "/proc/$pid"
        || (`cat /proc/$pid/stat` =~ /\)\s+Z/), 'master gone after KILL');
    ok(!$t2->is_running, 'not running');
    # what a worker forced out of a graceful shutdown says
    $t2->ignore_log(qr/\[alert\].*(?:open socket #\d+ left in connection|aborting)/);
};

subtest 'instances stop cleanly with workers => 1 and 4' => sub {
    for my $n (1, 4) {
        my $t3 = Test::AMonitor->new(module => 0, workers => $n);
        $t3->write_config(config => 'location / { return 204; }')->run;
        is(scalar($t3->worker_pids), $t3->effective_workers,
            "$n worker(s)");
        is($t3->http_get('/')->{code}, 204, 'serves');
        ok($t3->stop, 'stops on QUIT');
    }
};

done_testing();
