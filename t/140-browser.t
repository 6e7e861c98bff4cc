# A real browser as a panel: headless Chromium loads a page served by the
# same nginx; its JavaScript opens new WebSocket(".../ws/panel?token=T")
# (a browser cannot set Authorization on a WebSocket), receives a
# heartbeat, sends an action and gets the ack, sends it again and gets
# "duplicate ignored", and writes the results into the page, which the
# test reads from the DOM that Chromium dumps.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use POSIX qw(WNOHANG);
use File::Temp qw(tempdir);
use Time::HiRes qw(time);

sub find_chromium {
    for my $name (qw(chromium chromium-browser)) {
        for my $dir (split /:/, "$ENV{PATH}:/usr/bin:/usr/local/bin") {
            return "$dir/$name" if -x "$dir/$name";
        }
    }
    return undef;
}

my $CHROMIUM = find_chromium();

if (!$CHROMIUM) {
    if ($> == 0) {
        # Debian's chromium; install it once (root only)
        local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
        my $cmd = 'apt-get install -y -q --no-install-recommends chromium';
        my $out = `$cmd 2>&1`;
        if ($? != 0) {
            $out .= `apt-get update -q 2>&1 && $cmd 2>&1`;
        }
        $CHROMIUM = find_chromium();
        diag("chromium installed with apt-get") if $CHROMIUM;
        diag("apt-get output:\n$out") unless $CHROMIUM;
    }
}

if (!$CHROMIUM) {
    fail('headless Chromium is needed for this test and is not installed: '
        . 'run "apt-get install chromium" as root (the test installs it '
        . 'itself when run as root)');
    done_testing();
    exit;
}

my $ver = `"$CHROMIUM" --version 2>/dev/null`;
chomp $ver;
note("browser: $ver");

my $TOKEN = 'br0wser t&k=n';
my $TOKEN_Q = 'br0wser%20t%26k%3Dn';

my $t = Test::AMonitor->new(workers => 2);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'web-a',
    heartbeat_interval => 0.2,
    actions => { restart => [1, 'restarted for the browser'] });

my $HTML = <<"EOH";
<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>amonitor: waiting</title></head>
<body>
<h1>AMonitor browser panel</h1>
<pre id="log"></pre>
<pre id="result">pending</pre>
<iframe id="hold" src="/slow/hold.txt"></iframe>
<script>
(function () {
  var r = { open: false, protocol: null, heartbeat: null, ack: null,
            duplicate: null, status: [], close: null, errors: 0 };
  var log = document.getElementById('log');
  function note(s) { log.textContent += s + "\\n"; }
  // Chromium's virtual time does not advance while the page is loading: a
  // slow frame keeps it loading while the WebSocket works, and is removed
  // once the result is written, so that the DOM is dumped right after
  var hold = { abort: function () {
    var f = document.getElementById('hold');
    if (f) { f.remove(); }
  } };
  function finish(why) {
    r.done = why;
    document.getElementById('result').textContent = JSON.stringify(r);
    document.title = 'amonitor: ' + why;
    hold.abort();
  }
  var msgId = 'browser-' + Date.now() + '-' + Math.floor(Math.random() * 1e9);
  var action = { msg_id: msgId, type: 'action', target_id: 'web-a',
                 timestamp: Date.now(),
                 payload: { action: 'restart', params: { from: 'browser' } } };
  var ws = new WebSocket('ws://127.0.0.1:%%PORT_0%%/ws/panel?token=$TOKEN_Q',
                         ['amonitor.v1']);
  ws.onopen = function () { r.open = true; r.protocol = ws.protocol;
                            note('open'); };
  ws.onerror = function () { r.errors++; note('error'); };
  ws.onclose = function (e) {
    r.close = { code: e.code, clean: e.wasClean };
    finish(r.duplicate ? 'done' : 'closed');
  };
  ws.onmessage = function (e) {
    var m;
    try { m = JSON.parse(e.data); } catch (x) { note('not json'); return; }
    note('<- ' + m.type);
    if (m.type === 'target_status') { r.status.push(m.payload.state); }
    if (m.type === 'heartbeat' && !r.heartbeat) {
      r.heartbeat = e.data;
      ws.send(JSON.stringify(action));
    }
    if (m.type === 'action_ack' && m.payload.action_msg_id === msgId) {
      if (!r.ack) {
        r.ack = m;
        ws.send(JSON.stringify(action));
      } else if (!r.duplicate) {
        r.duplicate = m;
        ws.close(1000, 'browser done');
      }
    }
  };
  setTimeout(function () { if (!r.done) finish('timeout'); }, 8000);
})();
</script>
</body>
</html>
EOH
$t->write_file('html/panel.html', $HTML);
$t->write_file('slow/hold.txt', 'h' x 150_000);

$t->write_config(
    http_config => "amonitor_zone amonitor 1m;\n"
        . "amonitor_target web-a ws://127.0.0.1:%%PORT_1%%/;\n"
        . "types { text/html html; text/plain txt; }",
    config => <<"EOC",
        location /ui/ { alias %%PREFIX%%/html/; }
        location /slow/ {
            alias %%PREFIX%%/slow/;
            limit_rate 10k;
            add_header Cache-Control no-store;
        }
        location = /ws/panel {
            amonitor_panel on;
            amonitor_panel_token "$TOKEN";
        }
EOC
)->run;
ok($sdk->wait_connections(2), 'both workers connected to the SDK');

my $res = $t->http_get('/ui/panel.html');
is($res->{code}, 200, 'nginx serves the page');

# run Chromium, spinning the event loop (the fake SDK lives in this
# process) until it exits; returns its standard output
sub chromium_dump {
    my ($url) = @_;
    my $profile = tempdir('amon-chromium-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $outf = "$profile/dom.html";
    my @cmd = ($CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        '--disable-dev-shm-usage', "--user-data-dir=$profile",
        '--virtual-time-budget=15000', '--dump-dom', $url);
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', $outf);
        open(STDERR, '>', "$profile/stderr.log");
        exec(@cmd) or POSIX::_exit(127);
    }
    my $exited = wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 60);
    if (!$exited) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        diag('chromium did not exit within 60s');
    }
    open(my $fh, '<:raw', $outf) or return '';
    local $/;
    my $dom = <$fh> // '';
    close $fh;
    if ($dom !~ /id="result"/) {
        open(my $eh, '<', "$profile/stderr.log");
        diag("chromium stderr:\n" . join('', <$eh>)) if $eh;
    }
    return $dom;
}

$t->mark_log;
my $t0 = time;
my $dom = chromium_dump($t->url('/ui/panel.html'));
note(sprintf('chromium ran %.1fs', time - $t0));
like($dom, qr{<title>amonitor: done</title>},
    'the page says it is done in its title');
my ($json) = $dom =~ m{<pre id="result">(.*?)</pre>}s;
$json //= '';
for ($json) {
    s/&quot;/"/g;
    s/&lt;/</g;
    s/&gt;/>/g;
    s/&amp;/&/g;
}
my $r = try_decode_json($json);
ok($r, 'the result in the DOM is JSON') or diag($json);
$r //= {};

ok($r->{open}, 'the browser opened the WebSocket with ?token=');
is($r->{protocol}, 'amonitor.v1', 'subprotocol amonitor.v1 selected');
is($r->{errors}, 0, 'no WebSocket error event');

my $hb = try_decode_json($r->{heartbeat} // '');
is($hb && $hb->{type}, 'heartbeat', 'a heartbeat reached the browser');
is($hb && $hb->{target_id}, 'web-a', 'from the SDK');

is($r->{ack} && $r->{ack}{type}, 'action_ack', 'the action was acked');
is($r->{ack} && $r->{ack}{payload}{message}, 'restarted for the browser',
    'with the SDK\'s message');
ok($r->{ack} && $r->{ack}{payload}{success}, 'success');
is($r->{duplicate} && $r->{duplicate}{payload}{message}, 'duplicate ignored',
    'the repeated action is "duplicate ignored"');
ok($r->{duplicate} && $r->{duplicate}{payload}{duplicate},
    '"duplicate": true');

my @acts = $sdk->actions;
is(scalar @acts, 1, 'the SDK executed the action once');
is($acts[0] && $acts[0]{payload}{params}{from}, 'browser',
    'the browser\'s action');

ok($r->{close} && $r->{close}{clean}, 'the browser closed cleanly');
is($r->{close} && $r->{close}{code}, 1000, 'with 1000');

subtest 'a browser page with a wrong token cannot open the WebSocket' => sub {
    (my $bad = $HTML) =~ s/\Q$TOKEN_Q\E/wrong/;
    $t->write_file('html/bad.html', $bad);
    my $d = chromium_dump($t->url('/ui/bad.html'));
    my ($j) = $d =~ m{<pre id="result">(.*?)</pre>}s;
    $j //= '';
    $j =~ s/&quot;/"/g;
    my $x = try_decode_json($j) // {};
    ok(!$x->{open}, 'the WebSocket never opened');
    is($x->{close} && $x->{close}{code}, 1006,
        'the browser reports 1006 (handshake refused)');
    ok($x->{errors} >= 1, 'and an error event');
};

$t->stop;
$sdk->stop;
done_testing();
