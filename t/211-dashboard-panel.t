# The built-in dashboard in headless Chromium, for what its panel
# connection may do: the panel endpoint of ?panel= is accepted only on
# the page's own origin (the token, given in the URL or kept in the tab's
# session, never goes to another server, and the page says why; the
# Content-Security-Policy refuses other origins too), the targets shown
# are chosen in the page (a subscribe, kept in ?targets=), the dashboard asks
# for JSON so an SDK sending protobuf is shown (a fake SDK's protobuf
# heartbeat and the C example SDK with --binary), and the messages held
# while the event list is scrolled are bounded like the list, the page
# saying how many were dropped.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Browser;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Util qw(url_escape);

Test::AMonitor::Browser::chromium();    # or the test fails here

my $EXAMPLE = "$FindBin::Bin/../build/sdk/amonitor-sdk-example";
my $TOKEN = 'panel t0ken';
my $HELD = 1200;    # events sent while the list is paused (shown: 500)

# one worker: every message of the fake SDKs reaches the page once
my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);
my $pb = fake_sdk(port => $t->port(1), target_id => 'pb-a',
    heartbeat_interval => 0, metrics => { cpu_percent => '1' });
# another server on another port, recording every handshake
my $evil = fake_sdk(port => $t->port(2), target_id => 'evil',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target pb-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target pb-c ws://127.0.0.1:%%PORT_3%%/;
    amonitor_reconnect 50ms 300ms;
EOC
    config => <<"EOC",
        location = /ws/panel { amonitor_panel on;
                               amonitor_panel_token "$TOKEN"; }
        location = /amonitor/status { amonitor_status; }
        location /amonitor/ { amonitor_dashboard on; }
EOC
)->run;
ok($pb->wait_connections(1), 'the agent dialed the fake SDK');

# the C example SDK, sending protobuf
my $sdk_pid;
END { kill 'TERM', $sdk_pid if $sdk_pid }
if (-x $EXAMPLE) {
    $sdk_pid = fork // die "fork: $!";
    if ($sdk_pid == 0) {
        open(STDOUT, '>', $t->prefix . '/sdk-example.log');
        open(STDERR, '>&', \*STDOUT);
        exec($EXAMPLE, '--binary', '--quiet', '--port', $t->port(3),
            '--target-id', 'pb-c', '--interval', '1');
        exit 127;
    }
}
else {
    diag("$EXAMPLE not built: the C SDK's protobuf heartbeat is not checked");
}

# --- the browser -----------------------------------------------------------

my $br = Test::AMonitor::Browser->start(ignore => qr{/csp-probe'});
sub cdp { $br->cdp(@_) }
sub js { $br->js(@_) }
sub js_until { $br->js_until(@_) }

my $BASE = 'http://127.0.0.1:' . $t->port(0) . '/amonitor/';
my $CONN = q{document.getElementById('conn').textContent};

sub open_page { $br->open_page($BASE . ($_[0] // '')) }


# --- the token typed into the page, kept for the tab's session -------------

open_page('');
ok(js_until(q{!document.getElementById('login').hidden}),
    'without a token the page asks for one');
js(sprintf(q{document.getElementById('token').value = %s;
    document.querySelector('#login button').click(); 1},
    encode_json($TOKEN)));
ok(js_until("$CONN === 'connected'"), 'the typed token connects');
is(js(q{sessionStorage.getItem('amonitor-token')}), $TOKEN,
    "and is kept in the tab's session");

# --- protobuf SDKs: the dashboard asks for JSON -----------------------------

my $row = sub { "document.querySelector('tr[data-target=\"$_[0]\"]')" };
my $metrics = sub { js($row->($_[0])
    . "&&" . $row->($_[0]) . ".querySelector('.metrics').textContent") // '' };

ok(js_until($row->('pb-a')), 'the fake SDK appears');
$pb->send_all_binary(pb_heartbeat('pb-a',
    { cpu_percent => '77', encoded => 'protobuf' }));
ok(wait_for(sub { $metrics->('pb-a') =~ /encoded: protobuf/ }, 10),
    "a protobuf heartbeat's metrics are shown")
    or diag('metrics: ' . $metrics->('pb-a'));
like($metrics->('pb-a'), qr/cpu_percent: 77/, 'all of them');
if ($sdk_pid) {
    ok(wait_for(sub { $metrics->('pb-c') =~ /pid: $sdk_pid\b/ }, 15),
        'the C example SDK with --binary shows its metrics')
        or diag('metrics: ' . $metrics->('pb-c'));
    like(js($row->('pb-c') . ".querySelector('.age').textContent") // '',
        qr/ago$/, 'and the age of its heartbeat');
    # its heartbeats stop here: the count of held messages below is exact
    kill 'TERM', $sdk_pid;
    waitpid($sdk_pid, 0);
    $sdk_pid = undef;
    ok(js_until($row->('pb-c') . ".className === 'state-down'"),
        'the example SDK stopped');
    sleep_loop(0.5);
}
is(js(q{[...document.querySelectorAll('#events li')]
    .filter(e => e.textContent.includes('binary')).length}), 0,
    'no message is shown as an unreadable binary one');

# --- the messages held while the list is scrolled are bounded --------------

my $events = q{document.querySelectorAll('#events li[data-type=event]')};
my $sent = 0;
$pb->emit_event('fill', { n => ++$sent }) for 1 .. 60;
ok(js_until("$events.length >= 60"), 'the list fills');
ok(js(q{const l = document.getElementById('events');
    l.scrollTop = 200; l.scrollTop > 4}), 'the list is scrolled down');
sleep_loop(0.3);

my $first_held = $sent + 1;
$pb->emit_event('tick', { n => ++$sent }) for 1 .. $HELD;
my $button = q{document.getElementById('resume').textContent};
my $total = sub {
    my ($new, $dropped) = (js($button) // '')
        =~ /^Resume \((\d+) new(?:, (\d+) dropped)?\)$/ or return 0;
    return $new + ($dropped // 0);
};
ok(wait_for(sub { $total->() >= $HELD }, 20),
    "the page counts the $HELD messages that arrived while paused")
    or diag(js($button));
is(js($button), 'Resume (500 new, ' . ($HELD - 500) . ' dropped)',
    'it holds the newest 500 (as many as the list shows) and says so');
js(q{document.getElementById('resume').click(); 1});
ok(js_until(q{document.getElementById('resume').hidden}), 'resumed');
my $shown = js(qq{[...$events].map(e => e.textContent.match(/"n":(\\d+)/))
    .map(m => m ? +m[1] : 0)});
is(scalar(@{ $shown // [] }), 500, 'the list shows 500 of them');
is(($shown // [])->[0], $sent, 'the newest on top');
is(($shown // [])->[-1], $sent - 499, 'down to the 500th newest');
like(js(q{document.getElementById('events-note').textContent}) // '',
    qr/\b@{[ $HELD - 500 ]} older messages? (were )?not shown/,
    'the page says how many it did not show');

# --- the targets shown: a subscribe, kept in the page's URL -----------------

my $NOTE = q{document.getElementById('show-note').textContent};
my $texts = q{[...document.querySelectorAll('#events li')]
    .map(e => e.textContent).join(' ')};
my $show = sub {
    js(sprintf(q{document.getElementById('show-targets').value = %s;
        document.querySelector('#show button').click(); 1},
        encode_json($_[0])));
};
my $choice = q{[...document.getElementById('a-target').options]
    .some(o => o.value === 'pb-a')};

ok(js_until($row->('pb-a') . '&&' . $row->('pb-c')), 'both targets shown');
is(js($NOTE), 'Showing every target.', 'the page says it shows every one');
$show->('pb-c');
ok(js_until("$NOTE === 'Showing pb-c.'"), 'one id: the agent answered')
    or diag(js($NOTE));
ok(!js($row->('pb-a')), 'the other target left the table');
ok(!js($choice), 'and the action form');
ok(js($row->('pb-c')), 'the chosen one stays');
like(js('location.search') // '', qr/[?&]targets=pb-c(&|$)/,
    "the page's URL keeps the set");
$pb->emit_event('while-not-chosen', { n => 1 });
sleep_loop(0.5);
$show->('pb-*');
ok(js_until("$NOTE === 'Showing pb-*.'"), 'a pattern');
ok(js_until($row->('pb-a')), 'the target it matches is back (snapshot)');
$pb->emit_event('chosen-again', { n => 2 });
ok(js_until("($texts).includes('chosen-again')"),
    'its events arrive again');
ok(!js("($texts).includes('while-not-chosen')"),
    'the agent never sent the one of the time it was not chosen');

open_page('?targets=pb-c');
ok(js_until("$CONN === 'connected'"), 'a page opened with ?targets=pb-c');
is(js(q{document.getElementById('show-targets').value}), 'pb-c',
    'shows its set in the field');
ok(js_until($row->('pb-c')), 'and that target');
$pb->emit_event('not-for-this-page', { n => 3 });
sleep_loop(0.5);
ok(!js($row->('pb-a')), 'the panel asked the agent for that set only');
ok(!js("($texts).includes('not-for-this-page')"),
    'no event of another target reached it');
$show->('');
ok(js_until("$NOTE === 'Showing every target.'"),
    'an empty field asks for every target');
ok(js_until($row->('pb-a')), 'the other target is back');
unlike(js('location.search') // '', qr/targets/,
    'and the URL no longer names a set');
my $many = join(',', map { "t$_" } 1 .. 300);
$show->($many);
like(js($NOTE) // '', qr/^Not changed \(300 ids and patterns, at most 256\)/,
    'a set the agent would refuse is not sent, the page says why');
open_page("?targets=$many");
ok(js_until("$CONN === 'connected'"),
    'a page whose ?targets= the agent would refuse still connects');
like(js($NOTE) // '', qr/^\?targets= not used \(300 ids and patterns/,
    'without it, and says so');
ok(js_until($row->('pb-a') . '&&' . $row->('pb-c')), 'showing every target');

# --- the panel endpoint: this page's origin only ----------------------------

my $port = $t->port(0);
my $eport = $t->port(2);
my @refused = (
    ["ws://127.0.0.1:$eport/ws/panel", 'another port'],
    ["//127.0.0.1:$eport/ws/panel", 'a scheme-relative URL to another port'],
    ["http://127.0.0.1:$eport/ws/panel", 'http: to another port'],
    ["ws://localhost:$port/ws/panel", 'another host name'],
    ["wss://127.0.0.1:$port/ws/panel", 'wss: from an http: page'],
    ["ws://127.0.0.1:$eport/ws/panel", 'another port, token in the URL',
        '&token=' . url_escape($TOKEN)],
);
for my $c (@refused) {
    my ($panel, $what, $more) = @$c;
    open_page('?panel=' . url_escape($panel) . ($more // ''));
    ok(js_until(qq{/not this page's origin/.test($CONN)}, 5),
        "$what ($panel): the page says it is refused")
        or diag('the page says: ' . (js($CONN) // ''));
    like(js($CONN) // '', qr/\Q$panel\E/, 'and names it');
    sleep_loop(0.5);
    is(scalar($evil->handshakes), 0, 'nothing reached the other server');
}
ok(js(q{document.getElementById('login').hidden}),
    'no token is asked for a panel endpoint that is refused');

# the browser itself refuses a WebSocket to another origin (CSP)
js("try { new WebSocket('ws://127.0.0.1:$eport/csp-probe'); 1 }"
    . " catch (e) { 0 }");
sleep_loop(1);
is(scalar($evil->handshakes), 0,
    'the Content-Security-Policy keeps the browser from other origins');

for my $panel ('/ws/panel', '../ws/panel', "ws://127.0.0.1:$port/ws/panel",
    "http://127.0.0.1:$port/ws/panel")
{
    open_page('?panel=' . url_escape($panel));
    ok(js_until("$CONN === 'connected'"),
        "$panel on this origin connects with the kept token")
        or diag('the page says: ' . (js($CONN) // ''));
}

is(scalar($evil->handshakes), 0, 'the other server was never reached')
    or diag(explain([$evil->handshakes]));
$br->no_errors;

$br->stop;
$t->stop;
done_testing;


# a protobuf heartbeat Envelope (proto/amonitor.proto), written by hand:
# Envelope { msg_id = 1; type = 3; target_id = 4; timestamp = 5;
# payload = 6 } with HeartbeatPayload { target_id = 1;
# map<string, string> metrics = 2 }
sub pb_heartbeat {
    my ($id, $m) = @_;
    my $pl = pb_len(1, $id);
    $pl .= pb_len(2, pb_len(1, $_) . pb_len(2, $m->{$_})) for sort keys %$m;
    return pb_len(1, uuid4()) . pb_len(3, 'heartbeat') . pb_len(4, $id)
        . pb_varint(5 << 3) . pb_varint(now_ms()) . pb_len(6, $pl);
}

sub pb_varint {
    my ($v) = @_;
    my $out = '';
    while ($v >= 0x80) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v = int($v / 128);
    }
    return $out . chr($v);
}

sub pb_len {
    my ($field, $bytes) = @_;
    return pb_varint(($field << 3) | 2) . pb_varint(length $bytes) . $bytes;
}
