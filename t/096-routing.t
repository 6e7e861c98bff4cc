# Routing of actions: a known target_id wins over payload.target_url; an
# unknown target_id with the (normalised) URL of a known target goes to
# that target; an allowed URL is dialed on demand and registered under
# the action's target_id for every worker; nothing else is ever dialed,
# and a target's token is sent to that target only.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use IO::Socket::INET;

my $t = Test::AMonitor->new(workers => 2);
my $sdk_a = fake_sdk(port => $t->port(1), target_id => 'rt-a',
    heartbeat_interval => 0, token => 'tok-a');
my $sdk_b = fake_sdk(port => $t->port(2), target_id => 'rt-b',
    heartbeat_interval => 0);
my $sdk_c = fake_sdk(port => $t->port(3), target_id => 'rt-c',
    heartbeat_interval => 0);    # not configured: dialed on demand
my $sdk_l = fake_sdk(port => $t->port(4), target_id => 'rt-l',
    heartbeat_interval => 0);    # dialed on demand as ws://localhost
my $sdk_n = fake_sdk(port => $t->port(5), target_id => 'rt-n',
    heartbeat_interval => 0);    # dialed on demand without target_id
my $dead_port = $t->port(6);    # allowed, nothing listens

$t->write_config(
    server      => 0,
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target rt-a ws://127.0.0.1:%%PORT_1%%/ token=tok-a;
    amonitor_target rt-b ws://127.0.0.1:%%PORT_2%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_allow_url ws://127.0.0.1:%%PORT_1%%/other;
    amonitor_allow_url ws://localhost:*;
    amonitor_allow_url ws://sdk.example.invalid:*;
    amonitor_ack_timeout 1s;
    amonitor_connect_timeout 1s;
    amonitor_reconnect 50ms 500ms;
    server {
        listen 127.0.0.1:%%PORT_0%% reuseport;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
EOC
)->run;

ok($sdk_a->wait_connections(2), 'both workers dialed rt-a (with its token)');
ok($sdk_b->wait_connections(2), 'both workers dialed rt-b');

my $p = $t->panel('/ws/panel', name => 'p');

sub answer {
    my ($panel, $id, $timeout) = @_;
    return $panel->answer_to($id, $timeout // 5);
}

sub ask {
    my ($panel, %o) = @_;
    my $id = $o{msg_id} // uuid4();
    my %env = (msg_id => $id, type => 'action', timestamp => now_ms(),
        payload => { action => 'restart', params => {} });
    $env{target_id} = $o{target_id} if defined $o{target_id};
    $env{payload}{target_url} = $o{target_url} if defined $o{target_url};
    my $t0 = now_ms();
    $panel->send_json(\%env);
    my $r = answer($panel, $id, $o{timeout});
    return wantarray ? ($r, $id, (now_ms() - $t0) / 1000) : $r;
}

sub acked { my ($r) = @_; return $r && ($r->{type} // '') eq 'action_ack'
    && $r->{payload}{success} ? 1 : 0 }

my $url_a = 'ws://127.0.0.1:' . $t->port(1) . '/';
my $url_b = 'ws://127.0.0.1:' . $t->port(2) . '/';

subtest 'a known target_id wins over target_url' => sub {
    my ($r, $id) = ask($p, target_id => 'rt-a', target_url => $url_b);
    ok(acked($r), 'acked');
    is($sdk_a->executed($id), 1, 'the target named by target_id ran it');
    is($sdk_b->executed($id), 0, 'the one named by target_url did not');
    is($r && $r->{target_id}, 'rt-a', 'the ack is rt-a\'s');
};

subtest 'an unknown target_id with a known URL goes to that target' => sub {
    my $port_b = $t->port(2);
    for my $url ("ws://127.0.0.1:$port_b", "ws://127.0.0.1:$port_b/",
        "WS://127.0.0.1:$port_b")
    {
        my ($r, $id) = ask($p, target_id => 'demo-target',
            target_url => $url);
        ok(acked($r), "acked via $url");
        is($sdk_b->executed($id), 1, "rt-b ran it ($url)");
    }
    my ($r, $id) = ask($p, target_url => "ws://127.0.0.1:$port_b");
    ok(acked($r), 'a target_url alone selects the target too');
    is($sdk_b->executed($id), 1, 'rt-b ran it');
    is($sdk_c->accepted + $sdk_l->accepted, 0, 'nothing else was dialed');
};

# panels on both workers (told apart by an event each worker's
# connection to rt-b sends)
my ($by_worker, $all) = panels_per_worker($t, $sdk_b, workers => 2);
my %by_worker = %$by_worker;
my @panels = @$all;
is(scalar(keys %by_worker), 2, 'panels on both workers');
my @two = map { $by_worker{$_}[0] } sort keys %by_worker;

subtest 'an allowed URL is dialed on demand and registered' => sub {
    my $url_c = 'ws://127.0.0.1:' . $t->port(3) . '/';
    $t->mark_log;
    my ($r, $id, $dt) = ask($two[0], target_id => 'rt-c',
        target_url => $url_c);
    ok(acked($r), 'the first action to it was acked');
    is($sdk_c->executed($id), 1, 'rt-c ran it');
    note("on-demand dial and ack in ${dt}s");
    ok(!grep({ defined $_->{headers}{authorization} } $sdk_c->handshakes),
        'no Authorization header was sent to it');

    ok($sdk_c->wait_connections(2, 3),
        'the other worker connected to it too, within a second or so');

    for my $i (0, 1) {
        my ($r2, $id2) = ask($two[$i], target_id => 'rt-c');
        ok(acked($r2), "worker $i: an action by target_id alone works");
        is($sdk_c->executed($id2), 1, "worker $i: rt-c ran it");
    }

    my $s = try_decode_json($t->http_get('/status')->{body}) // {};
    my ($tc) = grep { $_->{id} eq 'rt-c' } @{ $s->{targets} // [] };
    ok($tc, 'amonitor_status lists rt-c');
    ok($tc && $tc->{dynamic}, 'as a dynamic target');
    is($tc && $tc->{url}, $url_c, 'with its URL');
};

subtest 'a dial on demand without target_id is named by its URL' => sub {
    my $url_n = 'ws://127.0.0.1:' . $t->port(5);
    my ($r, $id) = ask($p, target_url => $url_n);
    ok(acked($r), 'acked');
    is($sdk_n->executed($id), 1, 'the SDK ran it');
    ($r, $id) = ask($p, target_id => "$url_n/");
    ok(acked($r), 'the normalised URL works as its target_id');
    is($sdk_n->executed($id), 1, 'the SDK ran that one too');
};

subtest 'ws://localhost is dialed without DNS' => sub {
    my ($r, $id) = ask($p, target_id => 'rt-l',
        target_url => 'ws://localhost:' . $t->port(4) . '/');
    ok(acked($r), 'acked');
    is($sdk_l->executed($id), 1, 'the SDK behind localhost ran it');
};

subtest 'an allowed URL where nothing listens -> TARGET_UNAVAILABLE' => sub {
    my ($r, $id, $dt) = ask($p, target_id => 'rt-dead',
        target_url => "ws://127.0.0.1:$dead_port/", timeout => 5);
    is($r && $r->{type}, 'error', 'an error');
    is($r && $r->{payload}{code}, 'TARGET_UNAVAILABLE', 'TARGET_UNAVAILABLE');
    is($r && $r->{msg_id}, $id, "the action's msg_id");
    cmp_ok($dt, '<', 1 + tscale(0.5), 'within the ack timeout');
};

subtest 'an allowed host name that is not an IP address is an error' => sub {
    my ($r, $id, $dt) = ask($p, target_id => 'rt-name',
        target_url => 'ws://sdk.example.invalid:8765/');
    is($r && $r->{type}, 'error', 'an error')
        or diag(encode_json($r // {}));
    is($r && $r->{msg_id}, $id, "the action's msg_id");
    like($r && $r->{payload}{code}, qr/^(?:TARGET_UNAVAILABLE|INVALID_MESSAGE|TARGET_URL_NOT_ALLOWED)$/,
        'a routing error code: ' . ($r ? $r->{payload}{code} : 'none'));
    cmp_ok($dt, '<', tscale(0.5), 'at once (no DNS lookup)');
};

subtest 'a URL that is not allowed is never dialed' => sub {
    # a listener on another loopback address than the allowed one
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => 0,
        Listen => 5, Proto => 'tcp', ReuseAddr => 1, Blocking => 0);
    SKIP: {
        skip 'cannot listen on 127.0.0.2', 3 unless $l;
        my $port = $l->sockport;
        my ($r, $id) = ask($p, target_id => 'rt-evil',
            target_url => "ws://127.0.0.2:$port/");
        is($r && $r->{payload}{code}, 'TARGET_URL_NOT_ALLOWED',
            'TARGET_URL_NOT_ALLOWED');
        sleep_loop(0.5);
        my $c = $l->accept;
        ok(!$c, 'nobody connected to it');
        ($r) = ask($p, target_id => 'rt-evil');
        is($r && $r->{payload}{code}, 'UNKNOWN_TARGET',
            'and the name was not registered');
    }
};

subtest 'a token is sent to its own target only' => sub {
    my @ha = $sdk_a->handshakes;
    ok(@ha >= 2, 'rt-a saw the handshakes of both workers');
    ok(!grep({ ($_->{headers}{authorization} // '') ne 'Bearer tok-a' } @ha),
        'each with its token');
    is($sdk_a->rejected, 0, 'none was rejected');
    for my $sdk ($sdk_b, $sdk_c, $sdk_l, $sdk_n) {
        my @h = grep { defined $_->{headers}{authorization} }
            $sdk->handshakes;
        is(scalar(@h), 0, $sdk->target_id . ' never got an Authorization '
            . 'header');
    }

    # the same host and port as rt-a, another path: another URL
    my $other = 'ws://127.0.0.1:' . $t->port(1) . '/other';
    my $n = scalar($sdk_a->handshakes);
    my ($r) = ask($p, target_id => 'rt-a-other', target_url => $other);
    ok(wait_for(sub { $sdk_a->handshakes > $n }, 3),
        'the other path was dialed');
    my @new = grep { $_->{path} eq '/other' } $sdk_a->handshakes;
    ok(@new, 'a handshake for /other arrived');
    ok(!grep({ defined $_->{headers}{authorization} } @new),
        "rt-a's token was not sent to it");
    is($r && $r->{type}, 'error',
        'the SDK refused it (it wants a token), so the action failed');
};

$_->close for $p, @panels;

done_testing();
