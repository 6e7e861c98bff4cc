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
