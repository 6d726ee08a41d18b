# polyvisor: read up to $Count bytes of a file on the host from $Offset. This text is fixed: it never contains a
# user value; the path and the numbers are bound to the param() block (PSRP parameters, or splatted by invoke.ps1).
# Windows PowerShell 5.1 has no cmdlet that reads a byte range (Get-Content -Encoding Byte emits one object per
# byte), so a .NET FileStream does: opened for reading, sharing read and write with whoever has the file open.
# The bytes come back as base64 text in Data; a range that is all zero bytes comes back as Zero = $true and no Data
# (its base64 is only 'A's and '=' padding), so holes cost no bytes on the wire.
[CmdletBinding()]
param([string]$LiteralPath, [long]$Offset, [int]$Count)
$ErrorActionPreference = 'Stop'
$stream = [System.IO.File]::Open($LiteralPath, 'Open', 'Read', 'ReadWrite')
try {
    $length = $stream.Length
    $buffer = [byte[]]::new($Count)
    $null = $stream.Seek($Offset, 'Begin')
    $read = 0
    $got = 1
    while ($read -lt $Count -and $got -gt 0) {
        $got = $stream.Read($buffer, $read, $Count - $read)
        $read += $got
    }
} finally {
    $stream.Dispose()
}
$data = [System.Convert]::ToBase64String($buffer, 0, $read)
$zero = $data.TrimEnd('=').TrimStart('A').Length -eq 0
if ($zero) { $data = $null }
[pscustomobject]@{ Length = $length; Offset = $Offset; Read = $read; Zero = $zero; Data = $data }
