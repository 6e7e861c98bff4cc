# amonitor_allow_url constrains the path and the query, not only the host
# and port: a pattern without a path allows "/" only (no query), a path
# must be equal, a query only when the pattern has it, and a pattern
# ending with "*" allows what starts with it but never a way back up
# ("..", encoded dots or slashes).  A panel cannot make the agent GET an
# arbitrary path of a local service.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my %sdk = map { $_ => fake_sdk(port => $t->port($_), target_id => "s$_",
    heartbeat_interval => 0) } 1 .. 4;

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_reconnect 100ms 200ms;
    amonitor_ack_timeout 2s;
    amonitor_allow_url ws://127.0.0.1:%%PORT_1%%/amonitor;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_allow_url ws://127.0.0.1:%%PORT_3%%/sdk/*;
    amonitor_allow_url ws://127.0.0.1:%%PORT_4%%/q?env=prod;
EOC
    config => <<'EOC',
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

my $p = $t->panel('/ws/panel');
my $n = 0;

sub ask {
    my ($url) = @_;
    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action',
        target_id => 'u' . ++$n, timestamp => now_ms(),
        payload => { action => 'restart', target_url => $url } });
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ((($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id) || (($j->{type} // '') eq
            'action_ack' && ($j->{payload}{action_msg_id} // '') eq $id));
    }, 5);
    return $m ? ($m->{json}{type} eq 'action_ack' ? 'ack'
        : $m->{json}{payload}{code}) : 'none';
}

sub base { return 'ws://127.0.0.1:' . $t->port($_[0]) }

my @cases = (
    [1, '/amonitor', 'ack', 'the exact path'],
    [1, '/amonitor?x=1', 'TARGET_URL_NOT_ALLOWED', 'a query the pattern has not'],
    [1, '/admin/purge', 'TARGET_URL_NOT_ALLOWED', 'another path'],
    [1, '/amonitorx', 'TARGET_URL_NOT_ALLOWED', 'a longer path'],
    [2, '/', 'ack', 'a pattern without a path: "/"'],
    [2, '/admin/purge?all=1', 'TARGET_URL_NOT_ALLOWED',
        'a pattern without a path: no other path'],
    [2, '/?all=1', 'TARGET_URL_NOT_ALLOWED',
        'a pattern without a path: no query'],
    [3, '/sdk/a?x=1', 'ack', 'under the prefix, with a query'],
    [3, '/sdk/../admin', 'TARGET_URL_NOT_ALLOWED', '".." under the prefix'],
    [3, '/sdk/%2e%2e/admin', 'TARGET_URL_NOT_ALLOWED', 'encoded dots'],
    [3, '/sdk/..%2fadmin', 'TARGET_URL_NOT_ALLOWED', 'an encoded slash'],
    [3, '/sdkx', 'TARGET_URL_NOT_ALLOWED', 'beside the prefix'],
    [4, '/q?env=prod', 'ack', 'the exact query'],
    [4, '/q?env=dev', 'TARGET_URL_NOT_ALLOWED', 'another query'],
    [4, '/q', 'TARGET_URL_NOT_ALLOWED', 'the path without the query'],
);

for my $c (@cases) {
    my ($port_n, $path, $want, $what) = @$c;
    is(ask(base($port_n) . $path), $want, "$what: $path -> $want");
}

sleep_loop(0.5);
my %paths;
for my $i (1 .. 4) {
    $paths{$_->{path}}++ for $sdk{$i}->handshakes;
}
is_deeply([sort keys %paths], [sort '/amonitor', '/', '/sdk/a', '/q'],
    'only the allowed paths were ever requested');

# a learned target keeps a URL of 512 bytes, and one named by its URL
# alone (no target_id) a URL of 256: a longer one is refused as too long,
# not as a full registry (a new panel: the first has dialed its share)
my $p2 = $t->panel('/ws/panel');

sub ask_long {
    my ($path, $with_id) = @_;
    my $id = uuid4();
    $p2->send_json({ msg_id => $id, type => 'action',
        ($with_id ? (target_id => 'long' . ++$n) : ()),
        timestamp => now_ms(),
        payload => { action => 'restart', target_url => base(3) . $path } });
    my $m = $p2->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ((($j->{type} // '') eq 'action_ack'
            ? $j->{payload}{action_msg_id} : $j->{msg_id}) // '') eq $id;
    }, 5);
    return 'none' if !$m;
    return 'ack' if $m->{json}{type} eq 'action_ack';
    return "$m->{json}{payload}{code}: $m->{json}{payload}{message}";
}

my $url_len = length(base(3) . '/sdk/');
is(ask_long('/sdk/' . ('a' x (300 - $url_len)), 1), 'ack',
    'a 300-byte URL with a target_id is learned');
like(ask_long('/sdk/' . ('b' x (300 - $url_len)), 0),
    qr/^TARGET_UNAVAILABLE: payload\.target_url is too long to name a target \(at most 256 bytes without a target_id\)$/,
    'the same length without a target_id: too long to name a target');
like(ask_long('/sdk/' . ('c' x (600 - $url_len)), 1),
    qr/^TARGET_UNAVAILABLE: payload\.target_url is too long to be learned \(at most 512 bytes\)$/,
    'a 600-byte URL: too long to be learned');
is(ask_long('/sdk/' . ('d' x (256 - $url_len)), 0), 'ack',
    'a 256-byte URL without a target_id is learned');

$p2->close(1000);
$p->close(1000);

subtest 'a "*" inside a path is a configuration error' => sub {
    my $bad = Test::AMonitor->new(workers => 1);
    $bad->ignore_log(qr/\[emerg\] .*invalid URL pattern/);
    $bad->write_config(http_config => <<'EOC');
    amonitor_zone amon 1m;
    amonitor_allow_url ws://127.0.0.1:9000/a*b;
EOC
    ok(!$bad->try_run, 'nginx refuses it');
    like($bad->start_error // '', qr/invalid URL pattern "ws:\/\/127\.0\.0\.1:9000\/a\*b"/,
        'emerg names the pattern');
};

done_testing();
