# What a remote peer cannot make the agent do: answer 101 to HTTP/2, open a
# panel from a browser origin the location does not allow, forge log lines
# with control characters in ids, run an action twice by giving its msg_id
# twice in one text, or empty the dedupe table by a reload that changes the
# zone's size (refused with an emerg line instead).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

sub upgrade {
    my ($t, $path, %h) = @_;
    return $t->http_get($path, Upgrade => 'websocket',
        Connection => 'Upgrade', 'Sec-WebSocket-Key' => $KEY,
        'Sec-WebSocket-Version' => 13, %h);
}

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'h-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target h-a ws://127.0.0.1:%%PORT_1%%/;
    server {
        listen 127.0.0.1:%%PORT_2%% http2;
        location = /ws/panel { amonitor_panel on; }
    }
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
        location = /ws/origin {
            amonitor_panel on;
            amonitor_panel_allow_origin https://dash.example.com
                                        https://*.example.org;
        }
EOC
)->run;

ok($sdk->wait_connections(1), 'the worker dialed h-a');

subtest 'an HTTP/2 request to a panel location is answered 400, not 101'
    => sub {
    my $out = `curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2-prior-knowledge http://127.0.0.1:@{[ $t->port(2) ]}/ws/panel 2>&1`;
    like($out, qr/^400 2$/, "400 over HTTP/2 ($out)");
    error_log_like(qr/\[info\] .*amonitor: panel handshake refused: the WebSocket upgrade needs HTTP\/1\.1/,
        'logged at info with the reason');
    no_error_log(qr/epoll_ctl/, 'no epoll_ctl alert');
};

subtest 'amonitor_panel_allow_origin: exact and wildcard origins pass, '
    . 'others get 403, requests without Origin pass' => sub {
    my $r = upgrade($t, '/ws/origin', Origin => 'https://evil.example.net');
    is($r->{code}, 403, 'a foreign origin: 403');
    like($r->{body}, qr/origin not allowed/, 'with the reason');

    $r = upgrade($t, '/ws/origin', Origin => 'https://dash.example.com');
    is($r->{code}, 101, 'the exact origin: 101');

    $r = upgrade($t, '/ws/origin', Origin => 'https://a.b.example.org');
    is($r->{code}, 101, 'a subdomain of the wildcard: 101');

    $r = upgrade($t, '/ws/origin', Origin => 'http://a.example.org');
    is($r->{code}, 403, 'the wildcard with another scheme: 403');

    $r = upgrade($t, '/ws/origin', Origin => 'https://example.org');
    is($r->{code}, 403, 'the bare domain is not a subdomain: 403');

    $r = upgrade($t, '/ws/origin');
    is($r->{code}, 101, 'no Origin (not a browser): 101');

    $r = upgrade($t, '/ws/panel', Origin => 'https://evil.example.net');
    is($r->{code}, 101, 'a location without the directive: any origin');
};

subtest 'control characters in a msg_id cannot forge a log line' => sub {
    my $p = $t->panel('/ws/panel');
    my $id = "x\n2026/01/01 00:00:00 [emerg] 1#1: forged";
    # the escaped id in one [info] line is expected; a line of its own not
    $t->ignore_log(qr/\[info\] .*action "x\\x0a2026/);
    my $action = { msg_id => $id, type => 'action', target_id => 'h-a',
        payload => { action => 'restart' } };
    $p->send_json($action);
    ok($p->recv_type('action_ack', timeout => 5, action_msg_id => $id),
        'the action was acked');
    $p->send_json($action);
    my $dup = $p->recv_type('action_ack', timeout => 5, action_msg_id => $id);
    like($dup && $dup->{json}{payload}{message}, qr/duplicate ignored/,
        'the repeat is a duplicate');
    error_log_like(qr/duplicate action "x\\x0a2026\/01\/01 00:00:00 \[emerg\] 1#1: forged" ignored/,
        'the newline is escaped in the log line');
    no_error_log(qr/^2026\/01\/01 00:00:00 \[emerg\] 1#1: forged/m,
        'no forged line');
    $p->close(1000);
};

subtest 'a field the agent reads, given twice, is refused: the agent and '
    . 'the SDK cannot read two different actions from one text' => sub {
    my $p = $t->panel('/ws/panel');
    my $u = uuid4();
    # Mojo::JSON, the fake SDK's parser, keeps the last copy of a member,
    # as Python's json, JSON.parse and Go's encoding/json do
    for my $i (0 .. 2) {
        $p->send_text(qq({"msg_id":"first-$i-$u","msg_id":"victim-$u",)
            . qq("type":"action","target_id":"h-a",)
            . qq("payload":{"action":"restart"}}));
        my $m = $p->recv_type('error', timeout => 5);
        my $e = $m ? $m->{json}{payload} : {};
        is($e->{code}, 'INVALID_MESSAGE', "repeat $i: INVALID_MESSAGE");
        like($e->{message} // '', qr/given twice/, 'the message says why');
        my $id = $m ? $m->{json}{msg_id} // '' : '';
        ok($id ne '' && $id !~ /^(first|victim)-/,
            '... under a fresh msg_id: neither copy is echoed');
        ok(!exists $e->{action_msg_id}, '... and names no action');
    }
    $p->send_text(qq({"msg_id":"pay-$u","type":"action","target_id":"h-a",)
        . qq("payload":{"action":"restart"},"payload":{"action":"wipe"}}));
    my $m = $p->recv_type('error', timeout => 5);
    is($m && $m->{json}{payload}{code}, 'INVALID_MESSAGE',
        'two payloads: INVALID_MESSAGE');
    # the msg_id was given once: the refusal answers it, shaped as an ack
    is($m && $m->{json}{msg_id}, "pay-$u", '... answering the msg_id');
    is($m && $m->{json}{target_id}, 'h-a', '... naming the target');
    is($m && $m->{json}{payload}{action_msg_id}, "pay-$u",
        '... with action_msg_id');
    ok($m && defined $m->{json}{payload}{success}
        && !$m->{json}{payload}{success}, '... "success":false');
    ok($m && $m->{json}{payload}{final}, '... and "final":true');

    # a member of the wrong type in an action: the same shape
    $p->send_text(qq({"msg_id":"ts-$u","type":"action","target_id":"h-a",)
        . qq("timestamp":1.5,"payload":{"action":"restart"}}));
    $m = $p->recv_type('error', timeout => 5);
    is($m && $m->{json}{payload}{code}, 'INVALID_MESSAGE',
        'a fractional timestamp: INVALID_MESSAGE');
    is($m && $m->{json}{payload}{action_msg_id}, "ts-$u",
        '... with action_msg_id');
    ok($m && $m->{json}{payload}{final}, '... and "final":true');

    $p->send_json({ msg_id => "victim-$u", type => 'action',
        target_id => 'h-a', payload => { action => 'restart' } });
    ok($p->recv_type('action_ack', timeout => 5,
        action_msg_id => "victim-$u"), 'the real action is acked');
    is($sdk->executed("victim-$u"), 1, 'and ran once: none of the refused '
        . 'texts reached the SDK');
    is($sdk->executed("pay-$u"), 0, 'nor the one with two payloads');
    $p->close(1000);
};

subtest 'a reload that changes the zone size is refused and the dedupe '
    . 'table stays' => sub {
    my $p = $t->panel('/ws/panel');
    my $id = uuid4();
    my $action = { msg_id => $id, type => 'action', target_id => 'h-a',
        payload => { action => 'restart' } };
    $p->send_json($action);
    ok($p->recv_type('action_ack', timeout => 5, action_msg_id => $id),
        'an action was acked');
    $p->close(1000);

    $t->ignore_log(qr/\[emerg\] .*the size of amonitor zone "amon" cannot change on reload/);
    my %parts = $t->config_parts;
    (my $http = $parts{http_config}) =~ s/amon 1m/amon 2m/;
    $t->write_config(%parts, http_config => $http);
    ok(!$t->reload(timeout => tscale(5)), 'the reload did not take');
    error_log_like(qr/\[emerg\] .*the size of amonitor zone "amon" cannot change on reload: the dedupe state would be lost/,
        'emerg says why');

    my $q = $t->panel('/ws/panel');
    $q->send_json($action);
    my $dup = $q->recv_type('action_ack', timeout => 5, action_msg_id => $id);
    like($dup && $dup->{json}{payload}{message}, qr/duplicate ignored/,
        'the old workers still know the msg_id');
    $q->close(1000);
};

done_testing();
