# A worker finds a target by its normalised URL through an index (an
# rbtree, like the one by id), kept in step with every target added,
# learned again at another URL or removed: an action naming only
# payload.target_url reaches the configured target at that URL among
# hundreds (on that target's own connection, no second dial); a dial
# displaced by a register leaves the index, and the register's URL is
# found at once; the displaced URL is a new dial, not the old target.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $N = 300;

my $t = Test::AMonitor->new(workers => 1);
my %ran;    # action msg_id => the fake SDK connection that ran it
my $on_action = sub { my ($sdk, $env, $cid) = @_;
    $ran{ $env->{msg_id} } = $cid; return () };
my $hub = fake_sdk(port => $t->port(1), target_id => 'hub',
    heartbeat_interval => 0, on_action => $on_action);
my $old = fake_sdk(port => $t->port(2), target_id => 'old',
    heartbeat_interval => 0);
my $new = fake_sdk(port => $t->port(3), target_id => 'new',
    heartbeat_interval => 0);

my $targets = join '', map {
    "    amonitor_target u$_ ws://127.0.0.1:%%PORT_1%%/p$_;\n" } 1 .. $N;

$t->write_config(
    server      => 0,
    http_config => <<"EOC",
    amonitor_zone amon 2m;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 100ms 500ms;
    amonitor_ack_timeout 2s;
$targets
    server {
        listen 127.0.0.1:%%PORT_0%%;
        location = /ws/panel { amonitor_panel on; }
        location = /status { amonitor_status; }
    }
EOC
)->run;

ok($hub->wait_connections($N, 20), "the worker dialed all $N targets");

# the path each of the hub's connections was opened for
my %path_of;
my $i = 0;
for my $h ($hub->handshakes) {
    $path_of{ ++$i } = $h->{path};
}

my $p = $t->panel('/ws/panel');

sub ask {
    my (%o) = @_;
    my $id = uuid4();
    my %env = (msg_id => $id, type => 'action', timestamp => now_ms(),
        payload => { action => 'restart' });
    $env{target_id} = $o{target_id} if defined $o{target_id};
    $env{payload}{target_url} = $o{url} if defined $o{url};
    $p->send_json(\%env);
    my $r = $p->answer_to($id, 5);
    my $code = !$r ? 'none' : $r->{type} eq 'action_ack' ? 'ack'
        : $r->{payload}{code};
    return ($code, $id);
}

sub url { 'ws://127.0.0.1:' . $_[0] . ($_[1] // '/') }

for my $k (1, 2, 150, 299, $N) {
    # an unknown target_id, or none: the URL decides
    my ($code, $id) = ask(url => url($t->port(1), "/p$k"),
        ($k % 2 ? (target_id => "unknown-$k") : ()));
    is($code, 'ack', "an action naming the URL of u$k is acked");
    is($path_of{ $ran{$id} // 0 } // '', "/p$k",
        "on u$k\'s own connection");
}

# the URL as a panel may write it: the index holds the normalised form
my ($code, $id) = ask(url => 'WS://127.0.0.1:' . $t->port(1) . '/p77');
is($code, 'ack', 'a URL with the scheme in capitals is found too');
is($path_of{ $ran{$id} // 0 } // '', '/p77', 'on u77\'s connection');
is($hub->accepted, $N, 'none of these actions dialed a second connection');

# a dial, then displaced by a register of the same id at another URL
($code, $id) = ask(target_id => 'mv', url => url($t->port(2)));
is($code, 'ack', 'a panel dialed "mv" at the old URL');
is($old->executed($id), 1, 'the old URL ran it');

my ($cid) = $hub->conn_ids;
$hub->send_to($cid, encode_json({ msg_id => uuid4(), type => 'register',
    target_id => 'mv', timestamp => now_ms(),
    payload => { target_id => 'mv', sdk_url => url($t->port(3)) } }));
ok($new->wait_connections(1, 5), 'the register at the new URL is dialed');
ok(wait_for(sub { $old->connections == 0 }, 5),
    'the dial at the old URL was closed');

($code, $id) = ask(url => url($t->port(3)));
is($code, 'ack', 'the new URL alone finds "mv"');
is($new->executed($id), 1, 'at the new URL');
is($new->accepted, 1, 'over its one connection (found, not dialed again)');

my $before = $old->accepted;
($code, $id) = ask(url => url($t->port(2)));
is($code, 'ack', 'the old URL alone is acked');
is($old->executed($id), 1, 'by the SDK at the old URL');
is($new->executed($id), 0, 'not by "mv", which left that URL');
is($old->accepted, $before + 1, 'over a new dial: the index forgot it');

my $s = try_decode_json($t->http_get('/status')->{body}) // {};
my %url_of = map { $_->{id} => $_->{url} } @{ $s->{targets} // [] };
is($url_of{mv}, url($t->port(3)), 'amonitor_status: "mv" at the new URL');
is($url_of{ url($t->port(2)) }, url($t->port(2)),
    'the new dial is named by its URL');

$t->stop;
done_testing();
