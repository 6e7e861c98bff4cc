# SDK "register" messages: an allowed payload.sdk_url becomes a target
# named payload.target_id that every worker connects to (the registry is
# in the shared zone), so actions by that target_id work from any
# worker; a register with an URL amonitor_allow_url does not allow is
# ignored with a warn line.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use IO::Socket::INET;

my $t = Test::AMonitor->new(workers => 2);
my $hub = fake_sdk(port => $t->port(1), target_id => 'rg-hub',
    heartbeat_interval => 0);
my $new = fake_sdk(port => $t->port(2), target_id => 'rg-new',
    heartbeat_interval => 0);
my $pb = fake_sdk(port => $t->port(3), target_id => 'rg-pb',
    heartbeat_interval => 0);

$t->write_config(
    server      => 0,
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target rg-hub ws://127.0.0.1:%%PORT_1%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_ack_timeout 1s;
    amonitor_reconnect 50ms 500ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
EOC
)->run;

ok($hub->wait_connections(2), 'both workers dialed the configured SDK');
is($new->accepted, 0, 'nobody dialed rg-new yet');

# panels on both workers (told apart by an event each worker's
# connection to the hub sends)
my ($by_worker, $all) = panels_per_worker($t, $hub, workers => 2);
my %by_worker = %$by_worker;
my @panels = @$all;
is(scalar(keys %by_worker), 2, 'panels on both workers');
my @two = map { $by_worker{$_}[0] } sort keys %by_worker;

sub ask {
    my ($p, $target) = @_;
    my $id = uuid4();
    $p->send_json({ msg_id => $id, type => 'action', target_id => $target,
        timestamp => now_ms(), payload => { action => 'restart' } });
    my $m = $p->recv_until(sub {
        my $j = $_[0]{json};
        ref $j eq 'HASH' && ((($j->{type} // '') eq 'error'
            && ($j->{msg_id} // '') eq $id) || (($j->{type} // '') eq
            'action_ack' && ($j->{payload}{action_msg_id} // '') eq $id));
    }, 5);
    return ($m ? $m->{json} : undef, $id);
}

sub register_text {
    my ($id, $url) = @_;
    return encode_json({ msg_id => uuid4(), type => 'register',
        target_id => $id, timestamp => now_ms(),
        payload => { target_id => $id, sdk_url => $url,
            metadata => { version => '1.2.3' } } });
}

subtest 'a register makes every worker connect to the sdk_url' => sub {
    my ($cid) = $hub->conn_ids;
    # on one worker's connection only: the other learns it from the zone
    $hub->send_to($cid, register_text('rg-new',
        'ws://127.0.0.1:' . $t->port(2) . '/'));
    ok($new->wait_connections(2, 5), 'both workers connected to rg-new');

    for my $i (0, 1) {
        my ($r, $id) = ask($two[$i], 'rg-new');
        ok($r && ($r->{type} // '') eq 'action_ack' && $r->{payload}{success},
            "worker $i: an action by its target_id is acked")
            or diag(encode_json($r // {}));
        is($new->executed($id), 1, "worker $i: rg-new ran it");
        is($hub->executed($id), 0, "worker $i: the hub did not");
    }
    my $s = try_decode_json($t->http_get('/status')->{body}) // {};
    my ($e) = grep { $_->{id} eq 'rg-new' } @{ $s->{targets} // [] };
    ok($e && $e->{dynamic}, 'amonitor_status lists it as dynamic');
};

subtest 'a binary (protobuf) register works too' => sub {
    my $url = 'ws://127.0.0.1:' . $t->port(3) . '/';
    my $len = sub { my ($f, $s) = @_; chr(($f << 3) | 2) . chr(length $s)
        . $s };
    # RegisterPayload { target_id = 1; sdk_url = 2; }
    my $payload = $len->(1, 'rg-pb') . $len->(2, $url);
    # Envelope { msg_id = 1; type = 3; target_id = 4; payload = 6; }
    my $env = $len->(1, uuid4()) . $len->(3, 'register')
        . $len->(4, 'rg-pb') . $len->(6, $payload);
    $hub->send_all_binary($env);
    ok($pb->wait_connections(2, 5), 'both workers connected to rg-pb');
    my ($r, $id) = ask($two[1], 'rg-pb');
    ok($r && ($r->{type} // '') eq 'action_ack', 'an action to it is acked');
    is($pb->executed($id), 1, 'rg-pb ran it');
};

subtest 'a register with a URL that is not allowed is ignored' => sub {
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => 0,
        Listen => 5, Proto => 'tcp', ReuseAddr => 1, Blocking => 0);
    my $port = $l ? $l->sockport : free_port();
    $t->mark_log;
    $hub->send_all(register_text('rg-evil', "ws://127.0.0.2:$port/"));
    error_log_like(qr/\[warn\].*register.*rg-evil.*(?:not allowed|ignored)/,
        'a warn line says the register was ignored');
    sleep_loop(1.2);    # longer than the workers' look at the registry
    ok(!($l && $l->accept), 'nobody connected to its URL');
    my ($r) = ask($two[0], 'rg-evil');
    is($r && $r->{payload}{code}, 'UNKNOWN_TARGET',
        'its target_id is unknown');
    ($r) = ask($two[1], 'rg-evil');
    is($r && $r->{payload}{code}, 'UNKNOWN_TARGET',
        'on the other worker too');
};

subtest 'a register with an sdk_url longer than 512 bytes says so' => sub {
    $t->mark_log;
    my $url = 'ws://127.0.0.1:' . $t->port(2) . '/' . ('x' x 520);
    $hub->send_all(register_text('rg-long', $url));
    error_log_like(qr/\[warn\].*register of "rg-long" ignored: its sdk_url is longer than 512 bytes/,
        'a warn line says why');
    is($t->log_count(qr/register of "rg-long".*amonitor_learned_limit/), 0,
        'not blamed on amonitor_learned_limit');
    my ($r) = ask($two[0], 'rg-long');
    is($r && $r->{payload}{code}, 'UNKNOWN_TARGET', 'its target_id is unknown');
};

subtest 'a register cannot take over a configured target' => sub {
    my $other = fake_sdk(target_id => 'rg-hub', heartbeat_interval => 0);
    $hub->send_all(register_text('rg-hub', $other->url));
    sleep_loop(1.2);
    is($other->accepted, 0, 'the configured id keeps its URL');
    my ($r, $id) = ask($two[0], 'rg-hub');
    is($hub->executed($id), 1, 'actions still go to the configured SDK');
    $other->stop;
};

subtest 'a register that changes nothing says so' => sub {
    # the configured SDK names itself otherwise, at its own URL: the
    # target keeps its configured id (an SDK gets one name)
    $t->mark_log;
    $hub->send_all(register_text('rg-self-name',
        'ws://127.0.0.1:' . $t->port(1) . '/'));
    error_log_like(qr/\[info\].*register of "rg-self-name" at "ws:\/\/127\.0\.0\.1:\d+\/" ignored: the configured target "rg-hub" has that URL and keeps its id/,
        'the URL of a configured target: an info line names it');
    # another SDK's register with a configured id
    my $other = fake_sdk(target_id => 'rg-x', heartbeat_interval => 0);
    $t->mark_log;
    $new->send_all(register_text('rg-hub', $other->url));
    error_log_like(qr/\[info\].*register of "rg-hub" .* ignored: the configured target "rg-hub" has that id and keeps its id/,
        'the id of a configured target: an info line too');
    $other->stop;
    # no sdk_url, no target_id
    $t->mark_log;
    $hub->send_all(encode_json({ msg_id => uuid4(), type => 'register',
        target_id => 'rg-hub', timestamp => now_ms(),
        payload => { target_id => 'rg-nourl' } }));
    error_log_like(qr/\[info\].*register ignored: it has no payload\.sdk_url/,
        'a register without sdk_url: an info line');
    # the registered SDK repeating its own register is no news
    $t->mark_log;
    $new->send_all(register_text('rg-new',
        'ws://127.0.0.1:' . $t->port(2) . '/'));
    sleep_loop(0.5);
    is($t->log_count(qr/register of "rg-new"/), 0,
        'an SDK repeating its own register: no line');
};

$_->close for @panels;

done_testing();
