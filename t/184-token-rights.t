# Who may act: amonitor_panel_token given several times, each token with
# its rights.  A read_only token watches (heartbeats, events, snapshots,
# action_status) and never acts; a token with targets= acts on those ids
# and prefixes only.  An action outside the rights gets an error
# envelope FORBIDDEN, is never forwarded nor claimed, is counted in
# amonitor_status and amonitor_metrics and logged at info.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my $web1 = fake_sdk(port => $t->port(1), target_id => 'web-1',
    heartbeat_interval => 0);
my $db = fake_sdk(port => $t->port(2), target_id => 'db',
    heartbeat_interval => 0);
my $alias = fake_sdk(port => $t->port(3), target_id => 'alias',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target web-1 ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target db ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target alias ws://localhost:%%PORT_3%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_allow_url ws://127.0.0.1:%%PORT_2%%/*;
EOC
    config => <<'EOC',
        location = /ws/panel {
            amonitor_panel on;
            amonitor_panel_token admin-T;
            amonitor_panel_token watch-T read_only;
            amonitor_panel_token web-T targets=web-*,cache;
            amonitor_panel_token url-T targets=web-*,ws://127.0.0.1:*;
        }
        location = /status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
EOC
)->run;

ok($web1->wait_connections(1) && $db->wait_connections(1),
    'both SDKs dialed');

sub bearer { return (headers => { Authorization => "Bearer $_[0]" }) }

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

sub status { return try_decode_json($t->http_get('/status')->{body}) // {} }

subtest 'an unknown token is refused at the handshake' => sub {
    is(panel_handshake_status($t->ws_url('/ws/panel'), bearer('nope')), 401,
        'a wrong token: 401');
    is(panel_handshake_status($t->ws_url('/ws/panel')), 401,
        'no token: 401');
    is(panel_handshake_status($t->ws_url('/ws/panel?token=watch-T')), 101,
        'a second token works as ?token= too');
};

subtest 'a token without options may act on every target' => sub {
    my $p = $t->panel('/ws/panel', bearer('admin-T'));
    for my $target (qw(web-1 db)) {
        my ($r, $id) = ask($p, $target);
        is($r && $r->{type}, 'action_ack', "acked by $target");
    }
    $p->close(1000);
};

subtest 'a read_only token watches and never acts' => sub {
    my $p = $t->panel('/ws/panel', bearer('watch-T'));
    $web1->emit_event('tick', { n => 1 });
    ok($p->recv_type('event', timeout => 5), 'it gets events');

    my $before = status()->{forbidden} // 0;
    my $errors = status()->{errors} // 0;
    $t->mark_log;
    my ($r, $id) = ask($p, 'web-1');
    is($r && $r->{type}, 'error', 'an action gets an error');
    is($r && $r->{payload}{code}, 'FORBIDDEN', 'FORBIDDEN');
    like($r && $r->{payload}{message}, qr/read-only/, 'it says read-only');
    ok($r && $r->{payload}{final}, 'final');
    sleep_loop(0.3);
    is($web1->executed($id), 0, 'nothing was forwarded');
    error_log_like(qr/\[info\] .*amonitor: action "\Q$id\E" of panel #\d+ to "web-1" refused: this panel's token is read-only/,
        'logged at info');
    is(status()->{forbidden}, $before + 1, 'counted in amonitor_status');
    is(status()->{errors}, $errors + 1,
        'and as an action that ended in an error');
    like($t->http_get('/metrics')->{body},
        qr/^amonitor_forbidden_total \Q@{[ $before + 1 ]}\E$/m,
        'and in amonitor_metrics');

    # nothing was claimed: the same msg_id from an admin panel runs
    my $a = $t->panel('/ws/panel', bearer('admin-T'));
    $a->send_json({ msg_id => $id, type => 'action', target_id => 'web-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    my $ack = $a->recv_type('action_ack', timeout => 5,
        action_msg_id => $id);
    ok($ack && $ack->{json}{payload}{success}
        && ($ack->{json}{payload}{message} // '') !~ /duplicate/,
        'the msg_id was not claimed: it runs for a token that may act');
    is($web1->executed($id), 1, 'once');
    $a->close(1000);

    # action_status is a question, not an action: allowed
    $p->send_json({ msg_id => uuid4(), type => 'action_status',
        payload => { action_msg_id => $id } });
    my $st = $p->recv_type('action_status', timeout => 5);
    ok($st, 'action_status is answered for a read-only token');
    $p->close(1000);
};

subtest 'a token limited to targets acts on those only' => sub {
    my $p = $t->panel('/ws/panel', bearer('web-T'));
    my ($r, $id) = ask($p, 'web-1');
    is($r && $r->{type}, 'action_ack', 'web-1 matches web-*: acked');
    is($web1->executed($id), 1, 'web-1 ran it');

    ($r, $id) = ask($p, 'db');
    is($r && $r->{payload}{code}, 'FORBIDDEN', 'db: FORBIDDEN');
    like($r && $r->{payload}{message}, qr/may not act on this target/,
        'with the reason');
    sleep_loop(0.3);
    is($db->executed($id), 0, 'db did not get it');

    # the target an action reaches counts, not the name it gives
    my $id2 = uuid4();
    $p->send_json({ msg_id => $id2, type => 'action', target_id => 'web-x',
        timestamp => now_ms(), payload => { action => 'restart',
            target_url => 'ws://127.0.0.1:' . $t->port(2) . '/' } });
    my $m = $p->recv_until(sub { ($_[0]{json}{msg_id} // '') eq $id2
        || ($_[0]{json}{payload}{action_msg_id} // '') eq $id2 }, 5);
    is($m && $m->{json}{payload}{code}, 'FORBIDDEN',
        'a web-* name with the URL of db: FORBIDDEN');
    is($db->executed($id2), 0, 'db did not get it');
    $p->close(1000);
};

subtest 'a new target needs its URL in the rights, not only its name' => sub {
    my $db_before = scalar(grep { ($_->{payload}{action} // '') eq 'restart' }
        $db->actions);
    # "alias" is configured by host name; web-T may not act on it, nor
    # on db, whatever spelling of their address an action dials
    my $p = $t->panel('/ws/panel', bearer('web-T'));
    my $port3 = $t->port(3);
    my $port2 = $t->port(2);
    for my $url ("ws://127.0.0.1:$port3/", "ws://127.0.0.1:$port2/?",
        "ws://127.0.0.1:$port2//", "ws://127.0.0.1:$port2/x") {
        my $id = uuid4();
        $p->send_json({ msg_id => $id, type => 'action',
            target_id => 'web-new', timestamp => now_ms(),
            payload => { action => 'restart', target_url => $url } });
        my $m = $p->recv_until(sub { ($_[0]{json}{msg_id} // '') eq $id
            || ($_[0]{json}{payload}{action_msg_id} // '') eq $id }, 5);
        is($m && $m->{json}{payload}{code}, 'FORBIDDEN',
            "web-new at $url: FORBIDDEN");
    }
    sleep_loop(0.3);
    is(scalar($alias->actions), 0, 'alias ran nothing');
    is(scalar(grep { ($_->{payload}{action} // '') eq 'restart' }
        $db->actions) - $db_before, 0, 'db ran nothing more');

    # a token whose rights name the URLs may dial them under a name
    my $q = $t->panel('/ws/panel', bearer('url-T'));
    my $id = uuid4();
    $q->send_json({ msg_id => $id, type => 'action', target_id => 'web-new',
        timestamp => now_ms(), payload => { action => 'restart',
            target_url => "ws://127.0.0.1:$port3/" } });
    my $m = $q->recv_until(sub {
        ($_[0]{json}{payload}{action_msg_id} // '') eq $id
            || ($_[0]{json}{msg_id} // '') eq $id }, 5);
    is($m && $m->{json}{type}, 'action_ack',
        'url-T (web-*, ws://127.0.0.1:*) dials it: acked');
    $p->close(1000);
    $q->close(1000);
};

subtest 'what a repeat or action_status tells of an earlier action' => sub {
    my $admin = $t->panel('/ws/panel', bearer('admin-T'));
    my $web = $t->panel('/ws/panel', bearer('web-T'));

    # an action on db, which web-T may not act on
    my ($r, $id) = ask($admin, 'db');
    is($r && $r->{type}, 'action_ack', 'admin-T: db acked');
    is($db->executed($id), 1, 'db ran it');

    # web-T repeats its msg_id naming web-1: a duplicate, nothing runs,
    # and db's result is not given
    $web->send_json({ msg_id => $id, type => 'action', target_id => 'web-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    my $d = $web->recv_type('action_ack', timeout => 5,
        action_msg_id => $id);
    my $p = $d ? $d->{json}{payload} : {};
    like($p->{message} // '', qr/^duplicate ignored/,
        'web-T: "duplicate ignored"');
    ok($p->{duplicate}, 'a duplicate');
    is($p->{state}, 'done', 'its state');
    ok(!exists $p->{original}, 'without the result of an action on db');
    ok(!$p->{success}, 'not said to have succeeded');
    like($p->{message} // '', qr/may not act on/, 'the message says why');
    isnt($d && $d->{json}{target_id}, 'db', 'not labelled with db');
    is($web1->executed($id), 0, 'web-1 did not run it');

    $web->send_json({ msg_id => "q-$id", type => 'action_status',
        payload => { action_msg_id => $id } });
    my $st = $web->recv_until(
        sub { ($_[0]{json}{msg_id} // '') eq "q-$id" }, 5);
    is($st && $st->{json}{payload}{state}, 'done', 'web-T: action_status done');
    ok($st && !exists $st->{json}{payload}{result},
        'without the result of an action on db');

    # admin-T repeats it naming web-1: the answer is about db, with its result
    $admin->send_json({ msg_id => $id, type => 'action',
        target_id => 'web-1', timestamp => now_ms(),
        payload => { action => 'restart' } });
    $d = $admin->recv_type('action_ack', timeout => 5, action_msg_id => $id);
    $p = $d ? $d->{json}{payload} : {};
    is($d && $d->{json}{target_id}, 'db',
        'admin-T: the duplicate names the target the action went to');
    ok(ref $p->{original} eq 'HASH' && $p->{original}{success},
        'with its result');
    $admin->send_json({ msg_id => "q2-$id", type => 'action_status',
        payload => { action_msg_id => $id } });
    $st = $admin->recv_until(
        sub { ($_[0]{json}{msg_id} // '') eq "q2-$id" }, 5);
    is($st && $st->{json}{target_id}, 'db', 'action_status names db');
    ok($st && ref $st->{json}{payload}{result} eq 'HASH',
        'with the result');

    # web-T's own action on web-1: its repeat and status give the result
    ($r, my $own) = ask($web, 'web-1');
    is($r && $r->{type}, 'action_ack', 'web-T: web-1 acked');
    $web->send_json({ msg_id => $own, type => 'action', target_id => 'web-1',
        timestamp => now_ms(), payload => { action => 'restart' } });
    $d = $web->recv_type('action_ack', timeout => 5, action_msg_id => $own);
    $p = $d ? $d->{json}{payload} : {};
    is($p->{message}, 'duplicate ignored', 'its repeat: "duplicate ignored"');
    ok(ref $p->{original} eq 'HASH' && $p->{original}{success},
        'with its result');
    ok($p->{success}, 'successful');
    is($web1->executed($own), 1, 'web-1 ran it once');

    $admin->close(1000);
    $web->close(1000);
};

done_testing();
