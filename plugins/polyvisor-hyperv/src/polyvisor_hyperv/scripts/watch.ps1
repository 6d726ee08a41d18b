# polyvisor VM event watcher. This text is fixed: it never contains a user value.
# It runs until the client stops it (PSRP Stop signal, or WinRS Terminate for powershell.exe). Every 500 ms it
# lists the VMs (Get-VM: Id, Name, State) and writes one compact JSON object per change:
#   {"kind": "defined" | "state" | "undefined", "id": "<guid>", "name": "...", "state": "Running" | ...}
# Its first round writes every VM (kind "first") and then {"kind": "ready"}: later changes are measured from it.
# $toConsole comes from a fixed first line the transport puts before this text: $true writes each object as a
# line on stdout at once (powershell.exe under a WinRM shell); $false writes it to the output stream (PSRP).
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$seen = @{}
$ready = $false
while ($true) {
    $now = @{}
    $changes = @()
    foreach ($vm in @(Get-VM)) {
        $id = $vm.Id.ToString()
        $row = [ordered]@{ kind = 'state'; id = $id; name = $vm.Name; state = $vm.State.ToString() }
        $now[$id] = $row
        if (-not $ready) {
            $row.kind = 'first'
            $changes += $row
        } else {
            if (-not $seen.ContainsKey($id)) {
                $row.kind = 'defined'
                $changes += $row
            } elseif ($seen[$id].state -ne $row.state -or $seen[$id].name -ne $row.name) {
                $changes += $row
            }
        }
    }
    if ($ready) {
        foreach ($id in @($seen.Keys)) {
            if (-not $now.ContainsKey($id)) {
                $changes += [ordered]@{ kind = 'undefined'; id = $id; name = $seen[$id].name; state = $null }
            }
        }
    } else {
        $changes += [ordered]@{ kind = 'ready' }
    }
    foreach ($change in $changes) {
        $line = ConvertTo-Json -InputObject $change -Compress
        if ($toConsole) {
            [Console]::Out.WriteLine($line)
            [Console]::Out.Flush()
        } else {
            $line
        }
    }
    $ready = $true
    $seen = $now
    Start-Sleep -Milliseconds 500
}
